"""The email notifier against a real SMTP server on 127.0.0.1 (aiosmtpd) that requires STARTTLS and a
login: the certificate is made here (cryptography), trusted through SMTP_CA_FILE. The alert goes through
the whole path: rule → outbox → EmailSender."""

from __future__ import annotations

import datetime as dt
import email.policy
import ipaddress
import ssl
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from scoring_fixtures import free_port
from sqlalchemy import Engine, insert, select

from ticketguard import tables
from ticketguard.alerts.service import evaluate_rules, load_rules
from ticketguard.config import Settings
from ticketguard.delivery.outbox import RetryPolicy, deliver_due
from ticketguard.delivery.service import senders_from_settings

T0 = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass
class Mailbox:
    port: int
    ca: Path
    messages: list[dict[str, Any]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            {
                "tls": session.ssl is not None,
                "authenticated": session.authenticated,
                "to": list(envelope.rcpt_tos),
                "message": message_from_bytes(envelope.content, policy=email.policy.default),
            }
        )
        return "250 OK"


def _authenticator(mailbox: Mailbox) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"alerts",
            b"s3cret-pass",
        )
        if isinstance(auth_data, LoginPassword):
            mailbox.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    return check


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[Mailbox]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox(port=free_port(), ca=cert)
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=mailbox.port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticator(mailbox),
    )
    controller.start()
    yield mailbox
    controller.stop()


RULES = """\
alerts:
  - name: degraded_answers
    condition: degraded_rate > 5%
    duration: 0s
    severity: high
    actions:
      - type: email
        to: [oncall@example.com, risk@example.com]
"""


def settings_for(engine: Engine, tmp_path: Path, mailbox: Mailbox, **overrides: Any) -> Settings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(textwrap.dedent(RULES))
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": mailbox.port,
        "smtp_user": "alerts",
        "smtp_password": "s3cret-pass",
        "smtp_from": "ticketguard@example.com",
        "smtp_ca_file": mailbox.ca,
        "alert_console_url": "https://console.example/alerts",
    }
    values.update(overrides)
    return Settings(  # type: ignore[call-arg]
        database_url=engine.url.render_as_string(hide_password=False),
        data_dir=tmp_path,
        alert_rules_path=rules,
        _env_file=None,
        **values,
    )


def fire(engine: Engine, settings: Settings) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(tables.fraud_predictions),
            [
                {
                    "transaction_id": f"e-{i}",
                    "fraud_score": 0.1,
                    "decision": "APPROVED",
                    "timestamp": T0,
                    "degraded": i < 10,
                }
                for i in range(50)
            ],
        )
    report = evaluate_rules(engine, settings, load_rules(settings), now=T0)
    assert report.transitions == [("degraded_answers", "firing")]


def status(engine: Engine) -> tuple[str, str | None]:
    with engine.connect() as conn:
        row = conn.execute(select(tables.outbox.c.status, tables.outbox.c.last_error)).one()
    return row[0], row[1]


def test_an_alert_email_goes_over_starttls_with_login(
    sqlite_url: str, tmp_path: Path, smtp_server: Mailbox
) -> None:
    from ticketguard.kit.db import make_engine

    engine = make_engine(sqlite_url)
    settings = settings_for(engine, tmp_path, smtp_server)
    fire(engine, settings)
    report = deliver_due(engine, senders_from_settings(settings), clock=lambda: T0)
    assert report.sent == 1, status(engine)
    assert len(smtp_server.messages) == 1
    got = smtp_server.messages[0]
    assert got["tls"] is True
    assert got["authenticated"] is True
    assert smtp_server.logins == ["alerts"]
    assert got["to"] == ["oncall@example.com", "risk@example.com"]
    mail = got["message"]
    assert mail["Subject"] == "[FIRING] degraded_answers (high): degraded_answers: degraded_rate > 5%"
    assert mail["From"] == "ticketguard@example.com"
    assert mail["X-Ticketguard-Idempotency-Key"].endswith(":trigger:email")
    assert mail["Message-ID"].endswith("@ticketguard>")
    body = mail.get_content()
    assert "degraded_rate = 0.2 (condition degraded_rate > 5%, threshold 0.05; 10 of 50 answers)" in body
    assert "console: https://console.example/alerts" in body
    engine.dispose()


def test_a_wrong_password_is_final_and_visible(sqlite_url: str, tmp_path: Path, smtp_server: Mailbox) -> None:
    from ticketguard.kit.db import make_engine

    engine = make_engine(sqlite_url)
    settings = settings_for(engine, tmp_path, smtp_server, smtp_password="wrong")
    fire(engine, settings)
    deliver_due(engine, senders_from_settings(settings), clock=lambda: T0, policy=RetryPolicy(max_attempts=3))
    assert status(engine) == ("dead", "SMTP login refused (535)")
    assert smtp_server.messages == []
    with engine.connect() as conn:
        events = conn.execute(select(tables.security_events.c.event_type)).scalars().all()
    assert events == ["notification_failed"]
    engine.dispose()


def test_an_untrusted_certificate_sends_nothing(
    sqlite_url: str, tmp_path: Path, smtp_server: Mailbox
) -> None:
    from ticketguard.kit.db import make_engine

    engine = make_engine(sqlite_url)
    settings = settings_for(engine, tmp_path, smtp_server, smtp_ca_file=None)  # system CAs do not know it
    fire(engine, settings)
    deliver_due(engine, senders_from_settings(settings), clock=lambda: T0)
    state, error = status(engine)
    assert state == "dead"
    assert error is not None
    assert error.startswith("SMTP TLS failed")
    assert smtp_server.logins == []  # the password never went out
    assert smtp_server.messages == []
    engine.dispose()


def test_a_server_down_is_retried(sqlite_url: str, tmp_path: Path) -> None:
    from ticketguard.kit.db import make_engine

    engine = make_engine(sqlite_url)
    mailbox = Mailbox(port=free_port(), ca=tmp_path / "none.crt")
    settings = settings_for(engine, tmp_path, mailbox, smtp_ca_file=None)
    fire(engine, settings)
    deliver_due(engine, senders_from_settings(settings), clock=lambda: T0)
    state, error = status(engine)
    assert state == "pending"
    assert error == "SMTP server unreachable (ConnectionRefusedError)"
    engine.dispose()


def test_a_server_without_starttls_gets_nothing(sqlite_url: str, tmp_path: Path) -> None:
    from ticketguard.kit.db import make_engine

    mailbox = Mailbox(port=free_port(), ca=tmp_path / "none.crt")
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)  # plain SMTP, no STARTTLS
    controller.start()
    try:
        engine = make_engine(sqlite_url)
        settings = settings_for(engine, tmp_path, mailbox, smtp_ca_file=None)
        fire(engine, settings)
        deliver_due(engine, senders_from_settings(settings), clock=lambda: T0)
        assert status(engine) == ("dead", "SMTP server does not offer STARTTLS")
        assert mailbox.messages == []
        engine.dispose()
    finally:
        controller.stop()
