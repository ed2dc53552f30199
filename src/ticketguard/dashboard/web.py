"""The console's Flask server: who may reach it (ADMIN_IP_ALLOWLIST behind TRUSTED_PROXIES), who is logged
in (server-side sessions), CSRF on every state change, the login and logout pages, security headers.

Every request passes `_guard` before any page or Dash callback runs:
- the client address (netaddr.client_ip: X-Forwarded-For only from trusted proxies) must be in the
  allow-list when one is set — else 403 for everything, the login page included;
- outside /login and /healthz a live session is required — else a redirect to /login (pages) or 401
  (Dash's JSON requests);
- a POST must carry the session's CSRF token (form field `csrf_token`, or the `X-CSRFToken` header that
  Dash's renderer copies from the `_csrf_token` cookie) — else 403. The login form has its own
  double-submit token, since there is no session yet.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
from sqlalchemy import Connection, Engine
from werkzeug.wrappers import Response as BaseResponse

from ticketguard.admin import sessions
from ticketguard.admin.login import GENERIC_FAILURE, LoginFailed, authenticate
from ticketguard.config import Settings, SettingsError
from ticketguard.security.audit import audit
from ticketguard.security.events import SecurityEvent, user_token, write_events
from ticketguard.security.keys import pepper
from ticketguard.security.netaddr import IPNetwork, client_ip, parse_networks
from ticketguard.security.redact import hash_ip

log = logging.getLogger(__name__)

LOGIN_CSRF_COOKIE = "tg_login_csrf"
CSRF_COOKIE = "_csrf_token"  # the name dash-renderer reads and sends back as X-CSRFToken
CSRF_HEADER = "X-CSRFToken"
PUBLIC_PATHS = ("/login", "/healthz", "/favicon.ico")
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
# Security events of the console's admin actions (besides their admin_audit_log rows).
ADMIN_ACTION = "admin_action"
ADMIN_DENIED = "admin_denied"


class ConsoleConfig:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        if settings.environment == "production" and not settings.resolved_admin_cookie_secure:
            raise SettingsError(
                "refusing to serve the console with ENVIRONMENT=production and ADMIN_COOKIE_SECURE=false: "
                "its cookies must be TLS-only (serve it behind HTTPS)"
            )
        self.settings = settings
        self.engine = engine
        self.secure = settings.resolved_admin_cookie_secure
        self.cookie = "__Host-tg_console" if self.secure else "tg_console"
        self.idle = timedelta(minutes=settings.admin_session_idle_minutes)
        self.max_age = timedelta(hours=settings.admin_session_max_hours)
        self.csp = content_security_policy(())  # the Dash app adds its inline scripts' hashes (app.py)
        try:
            self.trusted: tuple[IPNetwork, ...] = parse_networks(settings.trusted_proxies)
            self.allowlist: tuple[IPNetwork, ...] = tuple(
                ipaddress.ip_network(v.strip(), strict=False) for v in settings.admin_ip_allowlist
            )
        except ValueError as exc:
            raise SettingsError(f"ADMIN_IP_ALLOWLIST / TRUSTED_PROXIES: {exc}") from None


def now_utc() -> datetime:
    return datetime.now(UTC)


def config() -> ConsoleConfig:
    return config_of(flask.current_app)


def config_of(server: flask.Flask) -> ConsoleConfig:
    cfg: ConsoleConfig = server.config["TG_CONSOLE"]
    return cfg


def request_ip() -> str:
    cfg = config()
    return client_ip(flask.request.remote_addr, flask.request.headers.getlist("X-Forwarded-For"), cfg.trusted)


def current_session() -> sessions.ConsoleSession | None:
    return flask.g.get("console_session")


def _allowed(ip: str, allowlist: tuple[IPNetwork, ...]) -> bool:
    if not allowlist:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in allowlist)


def _background_refresh() -> bool:
    """A Dash callback fired only by a dcc.Interval: not user activity, so it does not extend the idle
    timeout (an open tab must not keep a session alive forever)."""
    if flask.request.path != "/_dash-update-component":
        return False
    body = flask.request.get_json(silent=True) or {}
    changed = body.get("changedPropIds") or []
    return bool(changed) and all(str(p).endswith(".n_intervals") for p in changed)


def _deny(status: int, message: str) -> flask.Response:
    return flask.Response(message, status=status, mimetype="text/plain")


def _guard() -> BaseResponse | None:
    cfg = config()
    ip = request_ip()
    flask.g.client_ip = ip
    if not _allowed(ip, cfg.allowlist):
        log.warning("console request refused: address outside ADMIN_IP_ALLOWLIST")
        return _deny(403, "This address may not use the console.")
    path = flask.request.path
    if path in PUBLIC_PATHS:
        return None
    token = flask.request.cookies.get(cfg.cookie)
    with cfg.engine.begin() as conn:
        session = sessions.load_session(
            conn, token, now=now_utc(), idle=cfg.idle, touch=not _background_refresh()
        )
    if session is None:
        if flask.request.method == "GET" and not path.startswith("/_dash"):
            return flask.redirect("/login")
        return _deny(401, "Not logged in, or the session ended: log in again.")
    flask.g.console_session = session
    if flask.request.method in STATE_CHANGING:
        supplied = flask.request.headers.get(CSRF_HEADER) or flask.request.form.get("csrf_token")
        if not session.csrf_ok(supplied):
            return _deny(403, "Missing or wrong CSRF token.")
    return None


def content_security_policy(script_hashes: Sequence[str]) -> str:
    """The console's CSP. Scripts: its own files and the inline scripts whose hashes are listed (Dash's
    renderer start-up: ``dash.Dash.csp_hashes``) — no other inline script and no eval, so an injected
    ``<script>`` or ``javascript:`` does not run. Styles may be inline: plotly.js inserts its style rules at
    run time (and the page's own CSS is inline)."""
    scripts = " ".join(("'self'", *script_hashes))
    return (
        f"default-src 'self'; script-src {scripts}; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )


def _headers(response: BaseResponse) -> BaseResponse:
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", config().csp)
    if not flask.request.path.startswith("/_dash-component-suites"):
        response.headers["Cache-Control"] = "no-store"
    if config().secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ticketguard console — log in</title>
<style>body{{font-family:system-ui,sans-serif;background:#f4f6f8;display:flex;justify-content:center;
padding-top:10vh}}form{{background:#fff;padding:2em;border-radius:8px;box-shadow:0 1px 4px #0002;width:20em}}
label{{display:block;margin-top:1em}}input{{width:100%;padding:.5em;box-sizing:border-box}}
button{{margin-top:1.5em;width:100%;padding:.6em}}.error{{color:#b00020}}</style></head>
<body><form method="post" action="/login" id="login-form">
<h2>ticketguard console</h2>
{error}
<input type="hidden" name="csrf_token" value="{csrf}">
<label>Username<input name="username" id="username" autocomplete="username" required></label>
<label>Password<input name="password" id="password" type="password" autocomplete="current-password" required>
</label>
<label>Authenticator code<input name="code" id="code" inputmode="numeric" autocomplete="one-time-code"
 pattern="[0-9]{{6}}" required></label>
<button type="submit" id="login-submit">Log in</button>
</form></body></html>"""


def _login_page(error: str | None, status: int) -> flask.Response:
    cfg = config()
    csrf = secrets.token_urlsafe(32)
    body = _LOGIN_PAGE.format(
        error=f'<p class="error" id="login-error">{html.escape(error)}</p>' if error else "", csrf=csrf
    )
    response = flask.Response(body, status=status, mimetype="text/html")
    response.set_cookie(
        LOGIN_CSRF_COOKIE, csrf, httponly=True, secure=cfg.secure, samesite="Strict", max_age=1800, path="/"
    )
    return response


def _ip_blocked(ip: str, now: datetime) -> bool:
    from ticketguard.security.lists import ip_token_blocked

    cfg = config()
    with cfg.engine.connect() as conn:
        return ip_token_blocked(conn, hash_ip(ip, pepper(cfg.settings)), now)


def login_get() -> flask.Response:
    return _login_page(None, 200)


def login_post() -> BaseResponse:
    cfg = config()
    form = flask.request.form
    cookie_token = flask.request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie_token or not hmac.compare_digest(cookie_token, form.get("csrf_token", "")):
        return _deny(403, "Missing or wrong CSRF token: reload the login page.")
    ip = flask.g.client_ip
    now = now_utc()
    if _ip_blocked(ip, now):
        # The correlation rule brute_force (login_failed events per IP) or an admin blocked this address.
        log.warning("console login refused: the address is blocked")
        return _login_page("Too many failed log-ins from this address; try again later.", 403)
    try:
        with cfg.engine.begin() as conn:
            try:
                user = authenticate(
                    conn,
                    cfg.settings,
                    username=form.get("username", "")[:200],
                    password=form.get("password", "")[:1024],
                    code=form.get("code", "")[:16],
                    ip=ip,
                    now=now,
                )
            except LoginFailed as failed:
                flask.g.login_failed = failed
                user = None
            if user is not None:
                token, csrf = sessions.create_session(
                    conn,
                    user,
                    now=now,
                    ip=ip,
                    user_agent=flask.request.headers.get("User-Agent"),
                    max_age=cfg.max_age,
                    replaces=flask.request.cookies.get(cfg.cookie),  # a new id at every log-in
                )
    except Exception:
        log.exception("console login failed with an error")
        return _login_page("The console cannot log you in right now; try again.", 503)
    if user is None:
        return _login_page(GENERIC_FAILURE, 401)
    response = flask.redirect("/")
    max_age = int(cfg.max_age.total_seconds())
    response.set_cookie(
        cfg.cookie, token, httponly=True, secure=cfg.secure, samesite="Strict", max_age=max_age, path="/"
    )
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, secure=cfg.secure, samesite="Strict", path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


def logout_post() -> BaseResponse:
    cfg = config()
    session = current_session()
    token = flask.request.cookies.get(cfg.cookie)
    if session is not None and token:
        with cfg.engine.begin() as conn:
            sessions.revoke(conn, token, now=now_utc())
            audit(
                conn,
                actor=session.user.username,
                action="admin.logout",
                now=now_utc(),
                ip_address=flask.g.client_ip,
                details={},
            )
    response = flask.redirect("/login")
    response.delete_cookie(cfg.cookie, path="/", secure=cfg.secure, samesite="Strict")
    response.delete_cookie(CSRF_COOKIE, path="/", secure=cfg.secure, samesite="Strict")
    return response


def create_server(settings: Settings, engine: Engine) -> flask.Flask:
    server = flask.Flask("ticketguard.dashboard")
    server.config["TG_CONSOLE"] = ConsoleConfig(settings, engine)
    server.config["MAX_CONTENT_LENGTH"] = 1_048_576
    server.before_request(_guard)
    server.after_request(_headers)
    server.add_url_rule("/login", "login_get", login_get, methods=["GET"])
    server.add_url_rule("/login", "login_post", login_post, methods=["POST"])
    server.add_url_rule("/logout", "logout", logout_post, methods=["POST"])
    server.add_url_rule("/healthz", "healthz", lambda: {"status": "ok"}, methods=["GET"])
    return server


def security_event(conn: Connection, event_type: str, severity: str, metadata: dict[str, Any]) -> None:
    """A security event of the console's user, in the caller's transaction (IP and user as keyed hashes)."""
    cfg = config()
    session = current_session()
    key = pepper(cfg.settings)
    ip = flask.g.get("client_ip")
    write_events(
        conn,
        [
            SecurityEvent(
                event_type=event_type,
                severity=severity,
                source_ip=hash_ip(ip, key) if ip else None,
                user_id=user_token(session.user.username, key) if session else None,
                metadata=metadata,
                timestamp=now_utc(),
            )
        ],
    )


def audit_denied(action: str, details: dict[str, Any]) -> None:
    """An action the user's role does not allow: refused, audited, and a security event."""
    cfg = config()
    session = current_session()
    with cfg.engine.begin() as conn:
        audit(
            conn,
            actor=session.user.username if session else "-",
            action="admin.denied",
            now=now_utc(),
            ip_address=flask.g.get("client_ip"),
            details={"action": action, **details},
        )
        security_event(conn, ADMIN_DENIED, "medium", {"action": action, **details})
