"""The operator console in a real browser: Debian's chromium driven by Playwright, against `ticketguard
serve dashboard` (gunicorn, two workers) on PostgreSQL holding a simulated history scored through the real
scoring API. Log-in with password + TOTP, every section with data, the decision detail, a step-up admin
action, reverting an automated response, and the refusals: wrong password, replayed TOTP, expired
session, missing CSRF token, an analyst doing an admin action, an address outside the allow-list.

One browser and one console for the module (a few seconds to start); each test has its own browser
context (cookies). Screenshots of each section go to TG_CONSOLE_SCREENSHOTS when set (docs/console/)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert, select, update
from typer.testing import CliRunner

from ticketguard import tables
from ticketguard.admin import totp
from ticketguard.admin.accounts import create_user
from ticketguard.cli import app
from ticketguard.kit.db import make_engine

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from scoring_fixtures import free_port, ladder_booster, make_settings, register_model, running_api
from waiting import wait_until

from ci_gate import unavailable
from console_fixtures import ADMIN_MFA_SECRET, PASSWORD, console_settings

CHROMIUM = os.environ.get("TG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECTIONS = ("kpis", "fraud", "traffic", "model", "health", "security", "reviews", "actions")
# One worker runs the whole module (make test: -n 2 --dist loadgroup): its tests share one console and one
# history, and some read what an earlier one left (its failed log-ins are the security section's events).
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.xdist_group("console_e2e")]


def _unavailable(reason: str) -> None:
    unavailable("browser", reason)


class Codes:
    """TOTP codes for one account, never one of a step already used (the server would refuse a replay)."""

    def __init__(self, username: str, secret: str) -> None:
        self.username = username
        self.secret = secret
        self.last = -1

    def fresh(self) -> str:
        while True:
            now = totp.time_step(datetime.now(UTC))
            for step in (now, now + 1):
                if step > self.last:
                    self.last = step
                    return totp.code_at(self.secret, step)
            time.sleep(0.5)

    def used(self) -> str:
        return totp.code_at(self.secret, self.last)


class Console:
    def __init__(
        self, url: str, engine: Engine, accounts: dict[str, Codes], env: dict[str, str], log: Path
    ) -> None:
        self.url = url
        self.engine = engine
        self.accounts = accounts
        self.env = env
        self.log = log

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def audit(self, action: str) -> list[Any]:
        t = tables.admin_audit_log
        with self.engine.connect() as conn:
            return list(conn.execute(select(t).where(t.c.action == action).order_by(t.c.id)))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} not found (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def console_db(postgres_admin_url: str, _postgres_pool: Any) -> Iterator[str]:
    from sqlalchemy import make_url

    name = _postgres_pool.take()
    yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    _postgres_pool.give_back(name)


def _score_traffic(base: str) -> list[str]:
    """Fresh purchases through the scoring API: every rung of the decision ladder (scoring_fixtures)."""
    ids = []
    with httpx.Client(base_url=base, timeout=20) as client:
        plan = [(False, None)] * 24 + [(True, None)] * 8 + [(False, "ip")] * 8 + [(True, "ip")] * 6
        for i, (resale, ip) in enumerate(plan):
            body: dict[str, Any] = {
                "transaction_id": f"e2e-{i:03d}",
                "wallet_address": "0x" + f"{i + 1:040x}",
                "ticket_id": f"evt_001-{i:06d}",
                "price_paid": 40.0 + i,
                "event_id": "evt_001",
                "is_resale": resale,
            }
            if ip:
                body["ip_address"] = f"203.0.113.{10 + i % 5}"
            r = client.post("/api/v1/ml/predict/fraud", json=body)
            assert r.status_code == 200, r.text
            ids.append(body["transaction_id"])
    return ids


@pytest.fixture(scope="module")
def console(console_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    data_dir = tmp_path_factory.mktemp("console-data")
    result = CliRunner().invoke(
        app, ["simulate", "-n", "2000", "--seed", "3", "--days", "14"], env={"DATABASE_URL": console_db}
    )
    assert result.exit_code == 0, result.output
    engine = make_engine(console_db)
    api_settings = make_settings(console_db, data_dir)
    booster = ladder_booster()
    register_model(engine, api_settings.resolved_model_dir, "m-e2e-1", booster, promote=False)
    register_model(engine, api_settings.resolved_model_dir, "m-e2e-2", booster, promote=True)
    settings = console_settings(console_db)
    accounts = {}
    with engine.begin() as conn:
        # one admin per test: two codes per 30 s step can be had at once (±1 step), more would wait
        people = [(f"alice{i}", "admin") for i in (1, 2, 4, 5, 7, 8)] + [
            ("bob", "analyst"),
            ("carol", "analyst"),
        ]
        for name, role in people:
            _, secret = create_user(
                conn,
                settings,
                username=name,
                password=PASSWORD,
                role=role,
                actor="e2e",
                now=datetime.now(UTC),
            )
            accounts[name] = Codes(name, secret)
    with running_api(api_settings) as api_base:
        ids = _score_traffic(api_base)
        now = datetime.now(UTC)
        with engine.begin() as conn:  # chargebacks that arrived for a few of them
            conn.execute(
                insert(tables.fraud_labels),
                [
                    {
                        "transaction_id": tid,
                        "is_fraud": i % 3 == 0,
                        "source": "chargeback",
                        "labelled_at": now,
                    }
                    for i, tid in enumerate(ids[:6] + ids[40:])  # approved and blocked ones; not the reviews
                ],
            )
        refreshed = CliRunner().invoke(app, ["views", "refresh"], env={"DATABASE_URL": console_db})
        assert refreshed.exit_code == 0, refreshed.output
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DB_", "REDIS_", "ADMIN_"))},
            "DATABASE_URL": console_db,
            "DATA_DIR": str(data_dir),
            "ADMIN_MFA_SECRET": ADMIN_MFA_SECRET,
            "DASHBOARD_API_URL": api_base,
            "DASHBOARD_REFRESH_SECONDS": "2",
        }
        log_path = data_dir / "console.log"
        log = log_path.open("wb")
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "ticketguard"),
                "serve",
                "dashboard",
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            env=env,
            stdout=log,  # a file, not a pipe nobody reads: a full pipe would block the console's logging
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if server.poll() is not None:  # exited: its output says why
                pytest.fail(f"the console did not start:\n{log_path.read_text()}")
            try:
                return httpx.get(url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(up, timeout=60, interval=0.2, what="the console answering /healthz")
            yield Console(url, engine, accounts, env, log_path)
        finally:
            server.send_signal(signal.SIGQUIT)  # quick shutdown: nothing to drain in a test
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
            engine.dispose()
            log.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)  # generous: CI shares two cores with the rest of the suite
    # What went wrong on the browser's side, for a failure's message (_on_dashboard): refused or failed
    # requests and the page's console errors.
    troubles: list[str] = []
    pg.on(
        "response",
        lambda r: troubles.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None,
    )
    pg.on("requestfailed", lambda r: troubles.append(f"failed {r.method} {r.url}: {r.failure}"))
    pg.on("console", lambda m: troubles.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: troubles.append(f"page error: {e}"))
    pg.troubles = troubles
    yield pg
    context.close()


def _login(
    page: Any, console: Console, username: str, *, code: str | None = None, password: str = PASSWORD
) -> None:
    page.goto(console.url + "/")
    page.wait_for_selector("#login-form")
    page.fill("#username", username)
    page.fill("#password", password)
    page.fill("#code", code or console.accounts[username].fresh())
    page.click("#login-submit")


def _logged_in(page: Any, console: Console, username: str) -> None:
    _login(page, console, username)
    _on_dashboard(page, console, username, "#kpis-asof:has-text('as of')")


def _on_dashboard(page: Any, console: Console, username: str, selector: str, timeout: int = 30_000) -> None:
    """Wait for ``selector`` on the dashboard; on a timeout, fail with what the page showed, what the
    browser saw go wrong (requests refused or failed, console errors) and the latest security events."""
    try:
        page.wait_for_selector(selector, timeout=timeout)
    except Exception as exc:  # playwright's TimeoutError: say what the page showed instead
        shown = page.inner_text("body")[:1500] if page.query_selector("body") else "(no body)"
        with console.engine.connect() as conn:
            events = conn.execute(
                select(tables.security_events.c.event_type, tables.security_events.c.user_id)
                .order_by(tables.security_events.c.id.desc())
                .limit(5)
            ).all()
        troubles = "\n".join(page.troubles[-20:]) or "(none)"
        raise AssertionError(
            f"{username} not on the dashboard after logging in: url {page.url}; page shows:\n{shown}\n"
            f"the browser saw:\n{troubles}\nlatest security events: {events}\n"
            f"the console's log ends with:\n{console.log_tail()}"
        ) from exc


def _apply(page: Any, kind_label: str, target: str, code: str) -> str:
    _choose(page, "#action-kind", kind_label)
    page.fill("#action-target", target)
    page.fill("#action-reason", "e2e")
    page.fill("#action-code", code)
    return _click_apply(page)


def _choose(page: Any, dropdown: str, label: str) -> None:
    """Pick ``label`` in a Dash dropdown as a keyboard user does: open it, type in its search box, Enter
    (the first match). A click on the option itself missed when the menu opened partly below the window of
    the page's last section, or moved as the sections above re-rendered."""
    page.click(dropdown)
    search = page.locator(".dash-dropdown-search")
    search.fill(label)
    search.press("Enter")
    page.wait_for_selector(f"{dropdown}:has-text('{label}')")


def _click_apply(page: Any) -> str:
    clicks = _clicks(page)
    page.click("#action-apply")
    return str(page.wait_for_selector(f"#action-message[data-n='{clicks + 1}']").inner_text())


def _clicks(page: Any) -> int:
    answered = page.query_selector("#action-message")
    return int(answered.get_attribute("data-n")) if answered else 0


def _open(page: Any, row: str, view: str | None = None, *, until: str | None = None) -> Any:
    """Click a row of a list that re-renders every 2 s and wait for what it opens (the selector ``view``,
    or the JavaScript condition ``until``): a click on a row being replaced is lost, so it is retried (it
    must still open in the end). ``until`` is a JavaScript *function*: Playwright evals a bare expression
    in the page, which the console's CSP (no 'unsafe-eval') refuses."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    def opened(**timeout: int) -> Any:
        if until is not None:
            return page.wait_for_function(until, **timeout)
        return page.wait_for_selector(view, **timeout)

    for _ in range(4):
        page.click(row)
        try:
            return opened(timeout=5_000)
        except PlaywrightTimeout:
            continue
    return opened()


def test_wrong_password_and_replayed_code_are_refused(page: Any, console: Console) -> None:
    _login(page, console, "alice1", password="not-the-password-9")
    assert "Invalid username, password or code." in page.inner_text("#login-error")
    code = console.accounts["alice1"].fresh()
    _login(page, console, "alice1", code=code)
    _on_dashboard(page, console, "alice1", "#whoami", timeout=90_000)  # the module's first page: cold caches
    page.context.clear_cookies()
    _login(page, console, "alice1", code=code)  # the same code again, within its 30 s
    assert "Invalid username, password or code." in page.inner_text("#login-error")
    stages = [r.metadata["stage"] for r in console.audit("admin.login_failed")]
    assert stages[-2:] == ["password", "totp"]
    assert console.audit("admin.login_failed")[-1].metadata.get("replay") is True


def _attempt(console: Console, username: str, password: str, code: str) -> int:
    """One log-in through the form (its CSRF token included), outside the browser; the HTTP status."""
    with httpx.Client(base_url=console.url) as client:
        form = client.get("/login").text
        token = form.split('name="csrf_token" value="')[1].split('"')[0]
        data = {"csrf_token": token, "username": username, "password": password, "code": code}
        return client.post("/login", data=data).status_code


def test_every_section_renders_live_data(page: Any, console: Console) -> None:
    assert _attempt(console, "alice2", "not-the-password-2", "000000") == 401  # an event for section 6
    _logged_in(page, console, "alice2")
    # The sections re-render every 2 s: each check waits for its text (a read racing a re-render would fail).
    for selector, text in (
        ("#kpi-transactions .value", "46"),
        ("#fraud-latest", "BLOCKED"),
        ("#section-traffic", "203.0.113."),
        ("#model-live", "m-e2e-2"),
        ("#model-realised", "24h"),
        ("#health-table", "Scoring API"),
        ("#security-events", "login_failed"),
    ):
        page.wait_for_selector(f"{selector}:has-text('{text}')")
    page.wait_for_selector("#score-histogram")
    for component in ("Scoring API", "PostgreSQL"):
        page.wait_for_selector(f"#health-table tr:has(td:text-is('{component}')) td:text-is('ok')")
    # the sections refresh on their own: the "as of" time moves without a reload
    first = page.inner_text("#kpis-asof")
    page.wait_for_function(
        "first => document.querySelector('#kpis-asof').innerText !== first", arg=first, timeout=30_000
    )
    # the severity filter: only critical events (none yet) → the empty state
    for severity in ("low", "medium", "high"):
        page.uncheck(f"#severity-filter input[value='{severity}']")
    page.wait_for_selector("#section-security .empty")
    for severity in ("low", "medium", "high"):
        page.check(f"#severity-filter input[value='{severity}']")
    shots = os.environ.get("TG_CONSOLE_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.wait_for_selector("#security-events")
        for section in SECTIONS:
            page.locator(f"#section-{section}").screenshot(path=str(Path(shots) / f"{section}.png"))
        page.screenshot(path=str(Path(shots) / "console.png"), full_page=True)
    # a high-risk decision opens its detail view: every feature, the contributions, the reasons
    detail = _open(page, "#fraud-latest button >> nth=0", "#detail-view")
    assert "Reasons" in detail.inner_text()
    assert "is_resale" in page.inner_text("#detail-features")
    assert "new_ip_for_wallet" in page.inner_text("#detail-contributions")
    if shots:
        page.locator("#detail-view").screenshot(path=str(Path(shots) / "detail.png"))
    # everything above ran under the console's strict script policy (no inline script but Dash's own, no
    # eval): the browser refused nothing
    assert [t for t in page.troubles if "Content Security Policy" in t] == []


def test_step_up_action_and_its_refusals_reused_code_and_missing_csrf(page: Any, console: Console) -> None:
    _logged_in(page, console, "alice4")
    codes = console.accounts["alice4"]
    wallet = "0x" + "cd" * 20
    assert _apply(page, "Block a wallet (blacklist)", wallet, codes.used()).startswith("Refused")
    message = _apply(page, "Block a wallet (blacklist)", wallet, codes.fresh())
    assert message.startswith("Done"), message
    with console.engine.connect() as conn:
        listed = conn.execute(select(tables.blacklisted_wallets.c.wallet_address)).scalars().all()
    assert wallet in listed
    (row,) = console.audit("admin.block_wallet")
    assert row.admin_user == "alice4"
    assert row.ip_address == "127.0.0.1"
    # the same callback without the CSRF token (a forged request riding the session cookie): refused
    body = {
        "output": "..action-result.children...action-code.value..",
        "outputs": [
            {"id": "action-result", "property": "children"},
            {"id": "action-code", "property": "value"},
        ],
        "inputs": [{"id": "action-apply", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["action-apply.n_clicks"],
        "state": [
            {"id": "action-kind", "property": "value", "value": "rollback_model"},
            {"id": "action-target", "property": "value", "value": ""},
            {"id": "action-reason", "property": "value", "value": "csrf"},
            {"id": "action-code", "property": "value", "value": "000000"},
        ],
    }
    status = page.evaluate(
        """body => fetch('/_dash-update-component', {method: 'POST',
                    headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)}
                ).then(r => r.status)""",
        body,
    )
    assert status == 403
    with console.engine.connect() as conn:
        deployments = conn.execute(select(tables.model_deployments.c.action)).scalars().all()
    assert deployments == ["promote"]


def test_analyst_reviews_a_case_and_the_label_is_stored(page: Any, console: Console) -> None:
    _logged_in(page, console, "bob")
    page.wait_for_selector("#review-queue button")
    page.wait_for_selector("#queue-stats:has-text('8 case(s) waiting')")
    _open(page, "#review-queue button >> nth=0", "#case-view")
    transaction_id = page.inner_text("#case-view h3 >> nth=0").removeprefix("Case ").strip()
    assert "new_ip_for_wallet" in page.inner_text("#case-features")
    page.wait_for_selector("#case-history, #case-view .empty")
    page.click("#case-claim")
    assert "Claimed" in page.wait_for_selector("#review-message[data-n='1']").inner_text()
    page.wait_for_selector("#case-status:has-text('claimed by bob')")
    page.check("#case-outcome input[value='fraud']")
    page.fill("#case-note", "same IP as a known ring")
    page.click("#case-decide")
    message = page.wait_for_selector("#review-message[data-n='2']").inner_text()
    assert "the label is stored" in message, message
    with console.engine.connect() as conn:
        label = conn.execute(
            select(tables.fraud_labels).where(tables.fraud_labels.c.transaction_id == transaction_id)
        ).one()
    assert label.is_fraud is True
    assert label.source == "analyst"
    assert label.labelled_by == "bob"
    assert label.labelled_at is not None
    assert any(r.metadata.get("transaction_id") == transaction_id for r in console.audit("review.decide"))
    claimed = [r for r in console.audit("review.claim") if r.metadata.get("transaction_id") == transaction_id]
    assert [(r.admin_user, r.ip_address) for r in claimed] == [("bob", "127.0.0.1")]
    page.wait_for_selector("#queue-stats:has-text('7 case(s) waiting')")
    shots = os.environ.get("TG_CONSOLE_SCREENSHOTS")
    if shots:
        page.locator("#section-reviews").screenshot(path=str(Path(shots) / "reviews.png"))


def test_analyst_is_refused_an_admin_action(page: Any, console: Console) -> None:
    _logged_in(page, console, "carol")
    assert "analyst" in page.inner_text("#whoami")
    message = _apply(page, "Block an IP address", "192.0.2.44", console.accounts["carol"].fresh())
    assert "needs the admin role" in message
    assert console.audit("admin.denied")[-1].admin_user == "carol"
    with console.engine.connect() as conn:
        assert conn.execute(select(tables.ip_blocks)).all() == []


def test_expired_session_goes_back_to_the_login_page(page: Any, console: Console) -> None:
    _logged_in(page, console, "alice7")
    with console.engine.begin() as conn:
        conn.execute(
            update(tables.admin_sessions)
            .where(tables.admin_sessions.c.revoked_at.is_(None))
            .values(last_seen_at=datetime.now(UTC) - timedelta(minutes=16))
        )
    page.reload()
    page.wait_for_selector("#login-form")


def test_address_outside_the_allow_list_is_refused(page: Any, console: Console) -> None:
    from werkzeug.serving import make_server

    from ticketguard.dashboard.app import create_app

    settings = console_settings(console.env["DATABASE_URL"], admin_ip_allowlist=["10.0.0.0/8"])
    server = make_server("127.0.0.1", free_port(), create_app(settings, console.engine).server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        answer = page.goto(f"http://127.0.0.1:{server.server_port}/login")
        assert answer.status == 403
        assert "may not use the console" in page.inner_text("body")
    finally:
        server.shutdown()
        thread.join(5)


def test_brute_force_blocks_the_address_and_the_revert_button_lifts_it(page: Any, console: Console) -> None:
    """Last in the module: while the block lasts, nobody can log in from 127.0.0.1."""
    _logged_in(page, console, "alice5")

    def attempt(username: str, password: str, code: str) -> int:
        return _attempt(console, username, password, code)

    for _ in range(5):
        assert attempt("mallory", "x" * 12, "000000") == 401
    result = CliRunner().invoke(app, ["jobs", "run", "security-correlation"], env=console.env)
    assert result.exit_code == 0, result.output
    with console.engine.connect() as conn:
        responses = conn.execute(select(tables.security_responses)).all()
    assert [(r.rule, r.action) for r in responses] == [("brute_force", "block_ip")]
    alice8 = console.accounts["alice8"]
    assert attempt("alice8", PASSWORD, alice8.fresh()) == 403  # the right credentials, a blocked address
    # the admin already logged in reverts the response from the security section
    page.wait_for_selector("#responses button")
    shots = os.environ.get("TG_CONSOLE_SCREENSHOTS")
    if shots:
        page.locator("#section-security").screenshot(path=str(Path(shots) / "security.png"))
    filled = "() => document.querySelector('#action-target').value !== ''"
    _open(page, "#responses button >> nth=0", until=filled)
    page.fill("#action-code", console.accounts["alice5"].fresh())
    message = _click_apply(page)
    assert "reverted" in message, message
    with console.engine.connect() as conn:
        (response,) = conn.execute(select(tables.security_responses)).all()
    assert response.reverted_by == "alice5"
    page.wait_for_selector("#section-security :text('No automated response is in force.')")
    assert attempt("alice8", PASSWORD, alice8.fresh()) == 302
