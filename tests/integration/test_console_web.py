"""The console's web layer through Flask's test client: login (CSRF, uniform failures, session rotation),
the session guard, CSRF on Dash's callbacks, the IP allow-list behind trusted proxies, the production cookie
rule, and role checks inside the callbacks. The browser runs the same paths in tests/e2e/test_console.py."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from console_fixtures import Account, console_settings, make_account
from ticketguard import tables
from ticketguard.config import SettingsError
from ticketguard.dashboard.app import create_app

WALLET = "0x" + "ab" * 20
APPLY = {
    "output": "..action-result.children...action-code.value..",
    "outputs": [{"id": "action-result", "property": "children"}, {"id": "action-code", "property": "value"}],
    "inputs": [{"id": "action-apply", "property": "n_clicks", "value": 1}],
    "changedPropIds": ["action-apply.n_clicks"],
}


def _apply_body(kind: str, target: str, code: str) -> dict[str, Any]:
    return {
        **APPLY,
        "state": [
            {"id": "action-kind", "property": "value", "value": kind},
            {"id": "action-target", "property": "value", "value": target},
            {"id": "action-reason", "property": "value", "value": "test"},
            {"id": "action-code", "property": "value", "value": code},
        ],
    }


@pytest.fixture
def settings(db_url: str):  # type: ignore[no-untyped-def]
    return console_settings(db_url, dashboard_api_url="http://127.0.0.1:9")


def _client(settings, engine: Engine):  # type: ignore[no-untyped-def]
    return create_app(settings, engine).server.test_client()


def _login_form(client) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match
    return match.group(1)


def _login(client, account: Account, code: str | None = None, password: str | None = None):  # type: ignore[no-untyped-def]
    csrf = _login_form(client)
    return client.post(
        "/login",
        data={
            "csrf_token": csrf,
            "username": account.username,
            "password": password or account.password,
            "code": code or account.code(),
        },
    )


def _cookie(client, name: str) -> str | None:  # type: ignore[no-untyped-def]
    cookie = client.get_cookie(name)
    return None if cookie is None else cookie.value


def test_login_sets_strict_httponly_cookie_and_rotates_the_session(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    alice = make_account(engine, settings, "alice")
    client = _client(settings, engine)
    assert client.get("/").status_code == 302  # no session: to the login page
    answer = _login(client, alice, alice.code(offset=0))
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"
    set_cookie = " ".join(answer.headers.getlist("Set-Cookie"))
    assert "tg_console=" in set_cookie
    assert "HttpOnly" in set_cookie
    assert "SameSite=Strict" in set_cookie
    first = _cookie(client, "tg_console")
    assert client.get("/").status_code == 200
    again = _login(client, alice, alice.code(offset=1))  # a new id at every log-in; the old one ends
    assert again.status_code == 302
    second = _cookie(client, "tg_console")
    assert first != second
    with engine.connect() as conn:
        rows = conn.execute(select(tables.admin_sessions).order_by(tables.admin_sessions.c.created_at)).all()
    assert len(rows) == 2
    assert rows[0].revoked_at is not None
    assert rows[1].revoked_at is None


def test_failures_answer_the_same_whether_or_not_the_user_exists(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    alice = make_account(engine, settings, "alice")
    client = _client(settings, engine)
    wrong = _login(client, alice, password="not-the-password-1")
    ghost = _login(client, Account("ghost", alice.password, alice.secret, "admin"))
    assert wrong.status_code == ghost.status_code == 401

    def body(r: Any) -> str:
        return re.sub(r'value="[^"]+"', "", r.get_data(as_text=True))

    assert body(wrong) == body(ghost)
    assert "Invalid username, password or code." in body(wrong)
    with engine.connect() as conn:
        actions = conn.execute(select(tables.admin_audit_log.c.action)).scalars().all()
    assert actions.count("admin.login_failed") == 2


def test_login_without_its_csrf_token_is_refused(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    alice = make_account(engine, settings, "alice")
    client = _client(settings, engine)
    _login_form(client)
    answer = client.post(
        "/login", data={"username": "alice", "password": alice.password, "code": alice.code()}
    )
    assert answer.status_code == 403
    with engine.connect() as conn:
        assert conn.execute(select(tables.admin_sessions)).first() is None


def test_dash_callbacks_need_a_session_and_its_csrf_token(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    alice = make_account(engine, settings, "alice")
    client = _client(settings, engine)
    body = _apply_body("block_wallet", WALLET, alice.code(offset=1))
    assert client.post("/_dash-update-component", json=body).status_code == 401
    assert _login(client, alice).status_code == 302
    csrf = _cookie(client, "_csrf_token")
    assert csrf
    refused = client.post("/_dash-update-component", json=body)  # no X-CSRFToken header
    assert refused.status_code == 403
    assert (
        client.post("/_dash-update-component", json=body, headers={"X-CSRFToken": "x" + csrf}).status_code
        == 403
    )
    done = client.post("/_dash-update-component", json=body, headers={"X-CSRFToken": csrf})
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "Done" in done.get_data(as_text=True)
    with engine.connect() as conn:
        assert conn.execute(select(tables.blacklisted_wallets.c.wallet_address)).scalars().all() == [WALLET]
        actions = conn.execute(select(tables.admin_audit_log.c.action)).scalars().all()
    assert "admin.block_wallet" in actions
    assert "blacklist.add" in actions
    with engine.connect() as conn:
        event = conn.execute(
            select(tables.security_events).where(tables.security_events.c.event_type == "admin_action")
        ).one()
    assert event.metadata == {"action": "block_wallet"}
    assert event.source_ip.startswith("ip:")


def test_step_up_refuses_a_used_code_and_records_it(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    alice = make_account(engine, settings, "alice")
    client = _client(settings, engine)
    login_code = alice.code()
    assert _login(client, alice, login_code).status_code == 302
    csrf = _cookie(client, "_csrf_token")
    answer = client.post(
        "/_dash-update-component",
        json=_apply_body("block_wallet", WALLET, login_code),
        headers={"X-CSRFToken": csrf},
    )
    assert "Refused" in answer.get_data(as_text=True)
    with engine.connect() as conn:
        assert conn.execute(select(tables.blacklisted_wallets)).first() is None
        failed = conn.execute(
            select(tables.admin_audit_log.c.metadata).where(
                tables.admin_audit_log.c.action == "admin.login_failed"
            )
        ).scalar_one()
    assert failed["purpose"] == "step-up block_wallet"
    assert failed["replay"] is True


def test_analyst_is_refused_admin_actions_inside_the_callback(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    bob = make_account(engine, settings, "bob", role="analyst")
    client = _client(settings, engine)
    assert _login(client, bob).status_code == 302
    csrf = _cookie(client, "_csrf_token")
    answer = client.post(
        "/_dash-update-component",
        json=_apply_body("block_wallet", WALLET, bob.code(offset=1)),
        headers={"X-CSRFToken": csrf},
    )
    assert answer.status_code == 200
    assert "needs the admin role" in answer.get_data(as_text=True)
    with engine.connect() as conn:
        assert conn.execute(select(tables.blacklisted_wallets)).first() is None
        denied = conn.execute(
            select(tables.admin_audit_log).where(tables.admin_audit_log.c.action == "admin.denied")
        ).one()
    assert denied.admin_user == "bob"
    assert denied.metadata["action"] == "block_wallet"
    with engine.connect() as conn:
        event = conn.execute(
            select(tables.security_events).where(tables.security_events.c.event_type == "admin_denied")
        ).one()
    assert event.severity == "medium"


def test_expired_and_logged_out_sessions_are_refused(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    alice = make_account(engine, settings, "alice")
    client = _client(settings, engine)
    assert _login(client, alice).status_code == 302
    assert client.get("/").status_code == 200
    with engine.begin() as conn:  # 16 minutes without activity
        conn.execute(
            update(tables.admin_sessions).values(last_seen_at=datetime.now(UTC) - timedelta(minutes=16))
        )
    assert client.get("/").status_code == 302
    assert _login(client, alice, alice.code(offset=1)).status_code == 302
    assert client.get("/").status_code == 200
    token = _cookie(client, "tg_console")
    csrf = _cookie(client, "_csrf_token")
    assert client.post("/logout", data={}).status_code == 403  # logout is a state change: CSRF too
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    client.set_cookie("tg_console", token or "")
    assert client.get("/").status_code == 302  # killed server-side, not only in the browser
    with engine.connect() as conn:
        assert "admin.logout" in conn.execute(select(tables.admin_audit_log.c.action)).scalars().all()


def test_ip_allowlist_behind_trusted_proxies(engine: Engine, db_url: str) -> None:
    allow = {"admin_ip_allowlist": ["10.0.0.0/8"]}
    direct = _client(console_settings(db_url, **allow), engine)  # the test client's peer is 127.0.0.1
    assert direct.get("/login").status_code == 403
    assert (
        direct.get("/login", headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 403
    )  # not a proxy of ours
    proxied = _client(console_settings(db_url, trusted_proxies=["127.0.0.1"], **allow), engine)
    assert proxied.get("/login", headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 200
    assert proxied.get("/login", headers={"X-Forwarded-For": "10.1.2.3, 192.0.2.9"}).status_code == 403
    with pytest.raises(SettingsError, match="ADMIN_IP_ALLOWLIST"):
        create_app(console_settings(db_url, admin_ip_allowlist=["not-a-network"]), engine)


def test_production_refuses_cookies_that_are_not_tls_only(engine: Engine, db_url: str) -> None:
    with pytest.raises(SettingsError, match="TLS-only"):
        create_app(console_settings(db_url, environment="production", admin_cookie_secure=False), engine)
    settings = console_settings(db_url, environment="production")
    alice = make_account(engine, settings, "alice")
    client = create_app(settings, engine).server.test_client(use_cookies=True)
    answer = _login(client, alice)
    cookies = " ".join(answer.headers.getlist("Set-Cookie"))
    assert "__Host-tg_console=" in cookies
    assert "Secure" in cookies
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")


def _kpis_refresh(shown: str | None) -> dict[str, object]:
    """The request the KPI section's timer sends, with the digest of the body on screen."""
    return {
        "output": "..kpis-body.children...kpis-asof.children...kpis-digest.data..",
        "outputs": [
            {"id": "kpis-body", "property": "children"},
            {"id": "kpis-asof", "property": "children"},
            {"id": "kpis-digest", "property": "data"},
        ],
        "inputs": [{"id": "refresh", "property": "n_intervals", "value": 7}],
        "state": [{"id": "kpis-digest", "property": "data", "value": shown}],
        "changedPropIds": ["refresh.n_intervals"],
    }


def test_automatic_refreshes_do_not_extend_the_idle_timeout(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    alice = make_account(engine, settings, "alice")
    client = _client(settings, engine)
    assert _login(client, alice).status_code == 302
    csrf = _cookie(client, "_csrf_token")
    ten_ago = datetime.now(UTC) - timedelta(minutes=10)
    with engine.begin() as conn:
        conn.execute(update(tables.admin_sessions).values(last_seen_at=ten_ago))
    answer = client.post("/_dash-update-component", json=_kpis_refresh(None), headers={"X-CSRFToken": csrf})
    assert answer.status_code == 200
    assert "as of" in answer.get_data(as_text=True)
    with engine.connect() as conn:
        seen = conn.execute(select(tables.admin_sessions.c.last_seen_at)).scalar_one()
    assert seen == ten_ago  # a timer fired it: not the user
    assert client.get("/").status_code == 200  # a page load is the user
    with engine.connect() as conn:
        seen = conn.execute(select(tables.admin_sessions.c.last_seen_at)).scalar_one()
    assert seen > ten_ago + timedelta(minutes=9)


def test_a_blocked_address_cannot_log_in_even_with_the_right_credentials(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    from ticketguard.security.keys import pepper
    from ticketguard.security.lists import block_ip, unblock_ip_token

    alice = make_account(engine, settings, "alice")
    client = _client(settings, engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        token = block_ip(
            conn,
            "127.0.0.1",
            pepper=pepper(settings),
            reason="brute force",
            actor="rule:brute_force",
            now=now,
            expires_at=now + timedelta(hours=1),
        )
    refused = _login(client, alice)
    assert refused.status_code == 403
    assert "Too many failed log-ins" in refused.get_data(as_text=True)
    with engine.begin() as conn:
        assert conn.execute(select(tables.admin_sessions)).first() is None
        unblock_ip_token(conn, token, actor="test", now=now)
    assert _login(client, alice, alice.code(offset=1)).status_code == 302


def test_a_refresh_that_changes_nothing_does_not_resend_the_body(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    """Rows on screen are not replaced by identical ones every refresh (a click on a replaced row is lost):
    only "as of" moves; new data is sent again."""
    alice = make_account(engine, settings, "alice")
    client = _client(settings, engine)
    assert _login(client, alice).status_code == 302
    headers = {"X-CSRFToken": _cookie(client, "_csrf_token")}

    def refresh(shown: str | None) -> dict:  # type: ignore[type-arg]
        answer = client.post("/_dash-update-component", json=_kpis_refresh(shown), headers=headers)
        assert answer.status_code == 200
        return answer.get_json()["response"]  # type: ignore[no-any-return]

    first = refresh(None)
    assert "kpis-body" in first
    digest = first["kpis-digest"]["data"]
    again = refresh(digest)
    assert set(again) == {"kpis-asof"}
    assert "kpis-body" in refresh("a digest of something else")


def test_a_new_worker_serves_the_page_scripts_asked_for_all_at_once(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    """Under gunicorn each worker is an app of its own. The page a browser got from one worker asks for a
    dozen scripts at once, and any of them may reach another worker that has served nothing yet. Dash
    prepares an app at its first request and marks it prepared before it is; requests on the worker's other
    threads meanwhile were refused (500: "the path requested is not valid") and the console stayed blank
    (found by the browser test, tests/e2e/test_console.py). The console prepares each app before it serves:
    a new app answers every script of the page, all asked for at the same moment, with 200."""
    alice = make_account(engine, settings, "alice")
    rendering = _client(settings, engine)  # the worker that served the page
    assert _login(rendering, alice).status_code == 302
    page = rendering.get("/").get_data(as_text=True)
    scripts = re.findall(r'<script src="(/_dash-component-suites/[^"]+)"', page)
    assert any("dash_core_components" in s for s in scripts), scripts
    scripts += [f"/_dash-component-suites/dash/dcc/{c}.js" for c in ("async-dropdown", "async-graph")]
    token = _cookie(rendering, "tg_console") or ""
    for _ in range(3):  # three new workers: the refusal was a race, not every time
        app = create_app(settings, engine).server
        start = threading.Barrier(len(scripts))

        def fetch(url: str, app: Any = app, start: threading.Barrier = start) -> tuple[str, int, str]:
            client = app.test_client()  # one per thread (a client is not thread-safe), one app
            client.set_cookie("tg_console", token)
            start.wait()
            answer = client.get(url)
            return url, answer.status_code, answer.headers.get("Content-Type", "")

        with ThreadPoolExecutor(len(scripts)) as pool:
            answers = list(pool.map(fetch, scripts))
        assert [a for a in answers if a[1] != 200 or "javascript" not in a[2]] == []


def test_the_page_runs_only_its_own_scripts(engine: Engine, settings) -> None:  # type: ignore[no-untyped-def]
    """The Content-Security-Policy of the console allows scripts from the console itself and the inline
    scripts it wrote (by hash) — not 'unsafe-inline', not 'unsafe-eval' — so a script injected into a page
    does not run. Every inline script the page does have is listed, or the console would not start in a
    browser (tests/e2e/test_console.py checks that no script is refused there)."""
    alice = make_account(engine, settings, "alice")
    client = _client(settings, engine)
    assert _login(client, alice).status_code == 302
    answer = client.get("/")
    policy = dict(part.strip().split(" ", 1) for part in answer.headers["Content-Security-Policy"].split(";"))
    sources = policy["script-src"].split()
    assert "'unsafe-inline'" not in sources
    assert "'unsafe-eval'" not in sources
    assert policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'none'"
    page = re.sub(r"<!--.*?-->", "", answer.get_data(as_text=True), flags=re.S)  # (an IE-only comment)
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>(.*?)</script>", page, flags=re.S)
    executable = [body for attributes, body in inline if "application/json" not in attributes]
    assert executable, "the page starts Dash's renderer with an inline script"
    for body in executable:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in sources, body[:80]
    assert (
        client.get("/login").headers["Content-Security-Policy"] == answer.headers["Content-Security-Policy"]
    )
