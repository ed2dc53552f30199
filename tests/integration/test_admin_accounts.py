"""Admin accounts and log-in: argon2id, the password policy, TOTP accepted once, lockout, the MFA alarm,
uniform failures, sessions, and the `ticketguard admin` commands — on SQLite and PostgreSQL."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from console_fixtures import PASSWORD, console_settings, make_account
from ticketguard import tables
from ticketguard.admin import passwords, sessions, totp
from ticketguard.admin.accounts import AccountError, create_user, get_user, lock_account, unlock_account
from ticketguard.admin.login import GENERIC_FAILURE, LoginFailed, authenticate, step_up
from ticketguard.admin.passwords import PasswordPolicyError
from ticketguard.cli import app
from ticketguard.kit.db import make_engine

NOW = datetime(2026, 12, 6, 7, 0, 0, tzinfo=UTC)


@pytest.fixture
def settings(db_url: str):  # type: ignore[no-untyped-def]
    return console_settings(db_url)


def _login(engine: Engine, settings, username: str, password: str, code: str, now: datetime = NOW):  # type: ignore[no-untyped-def]
    failure: LoginFailed | None = None
    with engine.begin() as conn:  # as the login route: the failure's records are committed, then it is raised
        try:
            return authenticate(
                conn, settings, username=username, password=password, code=code, ip="198.51.100.7", now=now
            )
        except LoginFailed as exc:
            failure = exc
    raise failure


def _fail(engine: Engine, settings, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    """Log in expecting a failure; returns its stage. The failure's records are committed."""
    with pytest.raises(LoginFailed, match=GENERIC_FAILURE.replace(".", r"\.")) as failed:
        _login(engine, settings, *args, **kwargs)
    return failed.value.stage


def _events(engine: Engine, event_type: str) -> list:  # type: ignore[type-arg]
    t = tables.security_events
    with engine.connect() as conn:
        return list(conn.execute(select(t).where(t.c.event_type == event_type).order_by(t.c.id)))


def _audit(engine: Engine, action: str) -> list:  # type: ignore[type-arg]
    t = tables.admin_audit_log
    with engine.connect() as conn:
        return list(conn.execute(select(t).where(t.c.action == action).order_by(t.c.id)))


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short-pw-1", "at least 12"),
        ("Password123456!", "common"),
        ("qwertyqwertyqwerty", "common"),
        ("aaaaaaaaaaaaaaaa", "common"),
        ("xx-alice-long-password-xx", "username"),
    ],
)
def test_password_policy_refuses_weak_passwords(password: str, rule: str) -> None:
    with pytest.raises(PasswordPolicyError, match=rule):
        passwords.check_password(password, username="alice", min_length=12)


def test_password_policy_accepts_a_long_uncommon_passphrase() -> None:
    passwords.check_password("violet-harbour-47-kettle", username="alice", min_length=12)


def test_account_stores_argon2id_hash_and_sealed_totp_secret(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    account = make_account(engine, settings, "alice")
    with engine.connect() as conn:
        row = conn.execute(select(tables.admin_users).where(tables.admin_users.c.username == "alice")).one()
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash
    assert account.secret not in row.totp_secret
    assert row.totp_secret.startswith("fernet:")
    assert totp.unseal(settings, row.totp_secret) == account.secret
    other = console_settings(str(engine.url.render_as_string(hide_password=False)), admin_mfa_secret="A" * 32)
    with pytest.raises(totp.SealError):
        totp.unseal(other, row.totp_secret)
    with engine.begin() as conn, pytest.raises(AccountError, match="exists already"):
        create_user(conn, settings, username="Alice", password=PASSWORD, role="admin", actor="t", now=NOW)
    with engine.begin() as conn, pytest.raises(AccountError, match="role must be one of"):
        create_user(conn, settings, username="bob", password=PASSWORD, role="root", actor="t", now=NOW)
    assert [r.admin_user for r in _audit(engine, "admin.user_create")] == ["test"]


def test_login_needs_password_and_code_and_a_code_is_accepted_once(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    account = make_account(engine, settings, "alice")
    code = account.code(NOW)
    user = _login(engine, settings, "alice", PASSWORD, code)
    assert user.username == "alice"
    assert user.last_login_at == NOW
    assert _fail(engine, settings, "alice", PASSWORD, code) == "totp"  # replayed within its window
    # an earlier step's code (still inside ±1 step) is refused too once a later one was accepted
    assert _fail(engine, settings, "alice", PASSWORD, account.code(NOW, -1)) == "totp"
    assert _login(engine, settings, "alice", PASSWORD, account.code(NOW, +1)).username == "alice"
    assert _fail(engine, settings, "alice", PASSWORD, account.code(NOW, +3), now=NOW) == "totp"  # outside ±1
    failed = _audit(engine, "admin.login_failed")
    assert failed[0].metadata["replay"] is True
    assert failed[0].metadata["stage"] == "totp"
    events = _events(engine, "login_failed")
    assert [e.metadata["stage"] for e in events] == ["totp", "totp", "totp"]
    assert all(e.source_ip.startswith("ip:") and "198.51" not in e.source_ip for e in events)
    assert len(_audit(engine, "admin.login")) == 2


def test_five_failures_in_five_minutes_lock_the_account_with_a_high_event(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    account = make_account(engine, settings, "alice")
    for i in range(4):
        assert (
            _fail(engine, settings, "alice", "wrong-password-x", "000000", now=NOW + timedelta(seconds=i))
            == "password"
        )
    assert _events(engine, "failed_login_attempts") == []
    assert (
        _fail(engine, settings, "alice", "wrong-password-x", "000000", now=NOW + timedelta(seconds=10))
        == "password"
    )
    (locked,) = _events(engine, "failed_login_attempts")
    assert locked.severity == "high"
    assert locked.metadata["failures"] == 5
    assert len(_audit(engine, "admin.account_lock")) == 1
    # the right password and code do not open a locked account, and the answer is the same
    later = NOW + timedelta(minutes=1)
    assert _fail(engine, settings, "alice", PASSWORD, account.code(later), now=later) == "locked"
    # after the lock (15 min) it opens again
    after = NOW + timedelta(minutes=16)
    assert _login(engine, settings, "alice", PASSWORD, account.code(after), now=after).username == "alice"


def test_failures_spread_over_more_than_the_window_do_not_lock(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    make_account(engine, settings, "alice")
    for i in range(8):
        _fail(engine, settings, "alice", "wrong-password-x", "000000", now=NOW + timedelta(minutes=2 * i))
    with engine.connect() as conn:
        user = get_user(conn, "alice")
    assert user is not None
    assert not user.locked(NOW + timedelta(minutes=15))
    assert _events(engine, "failed_login_attempts") == []


def test_three_bad_codes_are_a_critical_mfa_event(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    make_account(engine, settings, "alice")
    for i in range(2):
        _fail(engine, settings, "alice", PASSWORD, "123456", now=NOW + timedelta(seconds=i))
    assert _events(engine, "mfa_failures") == []
    _fail(engine, settings, "alice", PASSWORD, "123456", now=NOW + timedelta(seconds=5))
    (event,) = _events(engine, "mfa_failures")
    assert event.severity == "critical"
    assert event.metadata["failures"] == 3


def test_unknown_user_fails_like_a_wrong_password_and_as_slowly(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    make_account(engine, settings, "alice")
    assert _fail(engine, settings, "nobody", PASSWORD, "123456") == "password"
    row = _audit(engine, "admin.login_failed")[-1]
    assert row.admin_user == "nobody"
    assert row.metadata["known_user"] is False

    def timed(name: str) -> float:
        started = time.perf_counter()
        _fail(engine, settings, name, "wrong-password-x", "123456", now=NOW - timedelta(hours=1))
        return time.perf_counter() - started

    known = statistics.median(timed("alice") for _ in range(3))
    unknown = statistics.median(timed("nobody") for _ in range(3))
    assert unknown > 0.5 * known, (known, unknown)  # both pay one argon2 verification


def test_disabled_user_cannot_log_in(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    account = make_account(engine, settings, "alice")
    runner = CliRunner()
    del runner
    from ticketguard.admin.accounts import disable_user

    with engine.begin() as conn:
        disable_user(conn, "alice", actor="test", now=NOW)
    assert _fail(engine, settings, "alice", PASSWORD, account.code(NOW)) == "disabled"


def test_lock_and_unlock_account_end_sessions_and_audit(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    account = make_account(engine, settings, "alice")
    user = _login(engine, settings, "alice", PASSWORD, account.code(NOW))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        token, _ = sessions.create_session(
            conn, user, now=now, ip=None, user_agent=None, max_age=timedelta(hours=1)
        )
        assert lock_account(conn, "alice", until=now + timedelta(hours=1), reason="alert", actor="alerting")
        assert not lock_account(conn, "nobody", until=now, reason="x", actor="alerting")
    with engine.begin() as conn:
        assert sessions.load_session(conn, token, now=now, idle=timedelta(minutes=15), touch=True) is None
        assert get_user(conn, "alice").locked(now)  # type: ignore[union-attr]
        assert unlock_account(conn, "alice", actor="oncall")
        assert not unlock_account(conn, "nobody", actor="oncall")
        assert not get_user(conn, "alice").locked(now)  # type: ignore[union-attr]
    assert len(_audit(engine, "admin.account_lock")) == 1
    assert len(_audit(engine, "admin.account_unlock")) == 1


def test_sessions_idle_out_expire_and_are_revoked(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    account = make_account(engine, settings, "alice")
    user = _login(engine, settings, "alice", PASSWORD, account.code(NOW))
    idle = timedelta(minutes=15)
    with engine.begin() as conn:
        token, csrf = sessions.create_session(
            conn, user, now=NOW, ip="198.51.100.7", user_agent="ua", max_age=timedelta(hours=1)
        )
        stored = conn.execute(select(tables.admin_sessions)).one()
        assert stored.id != token
        assert stored.id == sessions.token_hash(token)
        assert csrf not in stored.csrf_hash
        live = sessions.load_session(conn, token, now=NOW + timedelta(minutes=10), idle=idle, touch=True)
        assert live is not None
        assert live.csrf_ok(csrf)
        assert not live.csrf_ok("nope")
        assert not live.csrf_ok(None)
        # activity at +10 min moved the idle deadline: +24 min is still live, but a refresh does not extend it
        assert sessions.load_session(conn, token, now=NOW + timedelta(minutes=24), idle=idle, touch=False)
        assert (
            sessions.load_session(conn, token, now=NOW + timedelta(minutes=26), idle=idle, touch=True) is None
        )
        token2, _ = sessions.create_session(
            conn, user, now=NOW, ip=None, user_agent=None, max_age=timedelta(minutes=30)
        )
        for minutes in (10, 20, 29):
            assert sessions.load_session(
                conn, token2, now=NOW + timedelta(minutes=minutes), idle=idle, touch=True
            )
        assert (
            sessions.load_session(conn, token2, now=NOW + timedelta(minutes=31), idle=idle, touch=True)
            is None
        )
        token3, _ = sessions.create_session(
            conn, user, now=NOW, ip=None, user_agent=None, max_age=timedelta(hours=1)
        )
        assert sessions.revoke(conn, token3, now=NOW)
        assert sessions.load_session(conn, token3, now=NOW, idle=idle, touch=True) is None


def test_step_up_needs_a_fresh_code(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    account = make_account(engine, settings, "alice")
    user = _login(engine, settings, "alice", PASSWORD, account.code(NOW))
    with engine.begin() as conn, pytest.raises(LoginFailed):  # the login's own code: used already
        step_up(conn, settings, user, account.code(NOW), ip=None, now=NOW, action="block_ip")
    later = NOW + timedelta(seconds=30)
    with engine.begin() as conn:
        step_up(conn, settings, user, account.code(later), ip=None, now=later, action="block_ip")
    assert _audit(engine, "admin.login_failed")[-1].metadata["purpose"] == "step-up block_ip"


def test_admin_cli_create_list_disable_reset_unlock(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from console_fixtures import ADMIN_MFA_SECRET

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ADMIN_MFA_SECRET", ADMIN_MFA_SECRET)
    runner = CliRunner()
    weak = runner.invoke(app, ["admin", "create", "carol", "--password-stdin"], input="password123\n")
    assert weak.exit_code == 2
    assert "at least 12" in weak.output
    made = runner.invoke(
        app,
        ["admin", "create", "carol", "--role", "admin", "--password-stdin", "--qr-png", "qr.png"],
        input=PASSWORD + "\n",
    )
    assert made.exit_code == 0, made.output
    assert "otpauth://totp/ticketguard:carol?secret=" in made.output
    assert "█" in made.output or "▀" in made.output  # the QR code, drawn in the terminal
    with open("qr.png", "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    assert PASSWORD not in made.output
    listed = runner.invoke(app, ["admin", "list"])
    assert listed.exit_code == 0
    assert "carol" in listed.output
    assert "admin" in listed.output
    reset = runner.invoke(app, ["admin", "reset-mfa", "carol"])
    assert reset.exit_code == 0
    assert "otpauth://" in reset.output
    assert runner.invoke(app, ["admin", "unlock", "carol"]).exit_code == 0
    assert runner.invoke(app, ["admin", "unlock", "nobody"]).exit_code == 2
    assert runner.invoke(app, ["admin", "disable", "carol"]).exit_code == 0
    listed = runner.invoke(app, ["admin", "list"])
    assert "no" in listed.output


def test_demo_admin_gets_a_generated_password_and_a_reset_prints_new_credentials(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console_fixtures import ADMIN_MFA_SECRET

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ADMIN_MFA_SECRET", ADMIN_MFA_SECRET)
    runner = CliRunner()
    args = ["admin", "create", "demo", "--role", "admin", "--generate-password", "--reset"]

    def credentials(output: str) -> tuple[str, str]:
        lines = dict(
            line.split(": ", 1) for line in output.splitlines() if line.startswith(("password:", "totp"))
        )
        return lines["password"], lines["totp secret"]

    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    password, secret = credentials(first.output)
    settings = console_settings(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            user = authenticate(
                conn,
                settings,
                username="demo",
                password=password,
                code=totp.code_at(secret, totp.time_step(NOW)),
                ip=None,
                now=NOW,
            )
        assert user.role == "admin"
        again = runner.invoke(app, args)  # make demo run twice: new credentials, the old ones stop working
        assert again.exit_code == 0, again.output
        password2, secret2 = credentials(again.output)
        assert password2 != password
        assert secret2 != secret
        later = NOW + timedelta(minutes=1)
        with engine.begin() as conn, pytest.raises(LoginFailed):
            authenticate(
                conn,
                settings,
                username="demo",
                password=password,
                code=totp.code_at(secret2, totp.time_step(later)),
                ip=None,
                now=later,
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("change", ["disable", "reset-mfa", "set-password", "lock"])
def test_every_account_change_ends_the_users_sessions_and_says_so_in_the_audit(
    engine: Engine,
    settings,  # type: ignore[no-untyped-def]
    change: str,
) -> None:
    """A disabled, re-keyed, re-passworded or locked account keeps no live session — checked on the session
    row itself, and after an unlock, so no other check (active, locked) can stand in for it."""
    from ticketguard.admin.accounts import disable_user, reset_mfa, set_password

    account = make_account(engine, settings, "alice")
    user = _login(engine, settings, "alice", PASSWORD, account.code(NOW))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        sessions.create_session(conn, user, now=now, ip=None, user_agent=None, max_age=timedelta(hours=1))
        if change == "disable":
            disable_user(conn, "alice", actor="t", now=now)
        elif change == "reset-mfa":
            reset_mfa(conn, settings, "alice", actor="t", now=now)
        elif change == "set-password":
            set_password(conn, settings, "alice", "a-new-long-uncommon-passphrase", actor="t", now=now)
        else:
            lock_account(conn, "alice", until=now + timedelta(minutes=1), reason="r", actor="t")
            unlock_account(conn, "alice", actor="t")
    with engine.connect() as conn:
        (revoked_at,) = conn.execute(select(tables.admin_sessions.c.revoked_at)).one()
    assert revoked_at is not None
    action = {
        "disable": "admin.user_disable",
        "reset-mfa": "admin.mfa_reset",
        "set-password": "admin.password_set",
        "lock": "admin.account_lock",
    }[change]
    (row,) = _audit(engine, action)
    assert row.metadata["user"] == "alice"
    assert row.metadata["sessions_revoked"] == 1
