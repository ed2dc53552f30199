"""Erasure of one wallet's personal data on request (GDPR art. 17), keeping what compliance needs.

What changes (live and archive tables, one database transaction):
- the wallet address, as buyer or seller, becomes a keyed pseudonym (HMAC-SHA256 with PSEUDONYM_KEY):
  the same wallet always maps to the same pseudonym, so fraud features and audits still link its rows,
  and only a holder of the key can tell which wallet it was;
- the IP addresses its transactions came from become keyed pseudonyms too, in transactions and in
  security_events; the precise coordinates of its transactions are removed (the country stays);
- mentions of the address inside JSON metadata (security_events, admin_audit_log) and label notes are
  replaced by the pseudonym, and so are they in review notes (review_cases.note); its allow-list entry is
  deleted; the reporting views are recomputed.
What stays: amounts, decisions, scores, timestamps, transaction ids and chain hashes (the chain is public
and the ETL's idempotency key), and a blacklist entry (fraud prevention is a legal ground to keep it).
The request itself is recorded in admin_audit_log under the pseudonym, never the address.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime

from eth_utils import to_checksum_address
from sqlalchemy import ColumnElement, Connection, Engine, Table, Text, cast, func, or_, select, update

from ticketguard import tables
from ticketguard.views.refresh import VIEW_NAMES, refresh_view
from ticketguard.wallets import WalletError, canonical_wallet

PSEUDONYM_PREFIX = "erased:"
MIN_KEY_LENGTH = 16
_WALLET_LENGTH = 42  # transactions.wallet_address is String(42)
_IP_LENGTH = 45  # transactions.ip_address is String(45)


class ErasureError(ValueError):
    """The request cannot be carried out as given; nothing was changed."""


def check_wallet(address: str) -> str:
    """The wallet's canonical spelling (`ticketguard.wallets.canonical_wallet`): the one every table holds."""
    try:
        return canonical_wallet((address or "").strip())
    except WalletError as exc:
        raise ErasureError(f"wallet {exc}, got {address!r}") from None


def check_key(key: str | None) -> bytes:
    if not key or len(key) < MIN_KEY_LENGTH:
        raise ErasureError(
            f"PSEUDONYM_KEY must be a secret of at least {MIN_KEY_LENGTH} characters to erase a wallet "
            "(it makes the pseudonyms; keep it, or pseudonyms can never be linked back for an investigation)"
        )
    return key.encode()


def _pseudonym(key: bytes, kind: str, value: str, length: int) -> str:
    digest = hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[: length - len(PSEUDONYM_PREFIX)]


def wallet_pseudonym(key: bytes, address: str) -> str:
    """42 characters, like the address it replaces; the same for every spelling of the address."""
    return _pseudonym(key, "wallet", check_wallet(address), _WALLET_LENGTH)


def ip_pseudonym(key: bytes, ip: str) -> str:
    return _pseudonym(key, "ip", ip, _IP_LENGTH)


def address_spellings(address: str) -> list[str]:
    """The ways the same address can appear in stored text: canonical (every column since migration 0008),
    EIP-55 checksummed, and as given when that is a full 42-character spelling. (An unpadded short spelling
    is left out: as a substring it would also match inside other, longer addresses.)"""
    canonical = check_wallet(address)
    given = {address} if len(address) == _WALLET_LENGTH else set()
    return sorted({canonical, to_checksum_address(canonical), *given})


@dataclass
class ErasureReport:
    pseudonym: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def _scrub_json(conn: Connection, table: Table, column: str, spellings: list[str], pseudonym: str) -> int:
    """Replace the address inside a JSON column's text, wherever it appears."""
    target = table.c[column]
    as_text = cast(target, Text)
    matches = or_(*(as_text.contains(spelling) for spelling in spellings))
    new_text: ColumnElement[str] = as_text
    for spelling in spellings:
        new_text = func.replace(new_text, spelling, pseudonym, type_=Text)
    # PostgreSQL stores JSONB: cast the edited text back. SQLite stores JSON as text already.
    new_value = cast(new_text, target.type) if conn.dialect.name == "postgresql" else new_text
    return int(conn.execute(update(table).where(matches).values({column: new_value})).rowcount)


def erase_wallet(
    engine: Engine, address: str, *, key: str | None, actor: str, now: datetime
) -> ErasureReport:
    """Pseudonymise one wallet everywhere, in one transaction, and audit it."""
    address = check_wallet(address)
    secret = check_key(key)
    spellings = address_spellings(address)
    pseudonym = wallet_pseudonym(secret, address)
    report = ErasureReport(pseudonym=pseudonym)
    counts = report.counts

    with engine.begin() as conn:
        ips: set[str] = set()
        for table in (tables.transactions, tables.transactions_archive):
            ips.update(
                conn.execute(
                    select(table.c.ip_address)
                    .distinct()
                    .where(table.c.wallet_address.in_(spellings), table.c.ip_address.is_not(None))
                ).scalars()
            )
        ip_map = {ip: ip_pseudonym(secret, ip) for ip in ips if not ip.startswith(PSEUDONYM_PREFIX)}

        for table in (tables.transactions, tables.transactions_archive):
            name = table.name
            # IPs first, while the rows can still be found by the wallet.
            for ip, replacement in ip_map.items():
                conn.execute(
                    update(table)
                    .where(table.c.wallet_address.in_(spellings), table.c.ip_address == ip)
                    .values(ip_address=replacement)
                )
            counts[f"{name}.buyer"] = int(
                conn.execute(
                    update(table)
                    .where(table.c.wallet_address.in_(spellings))
                    .values(wallet_address=pseudonym, latitude=None, longitude=None)
                ).rowcount
            )
            counts[f"{name}.seller"] = int(
                conn.execute(
                    update(table)
                    .where(table.c.seller_address.in_(spellings))
                    .values(seller_address=pseudonym)
                ).rowcount
            )

        events = tables.security_events
        counts["security_events.user_id"] = int(
            conn.execute(
                update(events).where(events.c.user_id.in_(spellings)).values(user_id=pseudonym)
            ).rowcount
        )
        source_ips = 0
        for ip, replacement in ip_map.items():
            source_ips += int(
                conn.execute(
                    update(events).where(events.c.source_ip == ip).values(source_ip=replacement)
                ).rowcount
            )
        counts["security_events.source_ip"] = source_ips
        counts["security_events.metadata"] = _scrub_json(conn, events, "metadata", spellings, pseudonym)
        for audit in (tables.admin_audit_log, tables.admin_audit_log_archive):
            counts[f"{audit.name}.metadata"] = _scrub_json(conn, audit, "metadata", spellings, pseudonym)

        labels = tables.fraud_labels
        notes_match = or_(*(labels.c.notes.contains(s) for s in spellings))
        new_notes: ColumnElement[str] = labels.c.notes
        for spelling in spellings:
            new_notes = func.replace(new_notes, spelling, pseudonym, type_=Text)
        counts["fraud_labels.notes"] = int(
            conn.execute(update(labels).where(notes_match).values(notes=new_notes)).rowcount
        )
        # review queue (issue 14): an analyst's note may name the wallet too
        cases = tables.review_cases
        case_note: ColumnElement[str] = cases.c.note
        for spelling in spellings:
            case_note = func.replace(case_note, spelling, pseudonym, type_=Text)
        note_match = or_(*(cases.c.note.contains(s) for s in spellings))
        counts["review_cases.note"] = int(
            conn.execute(update(cases).where(note_match).values(note=case_note)).rowcount
        )
        allow = tables.allowlisted_wallets
        counts["allowlisted_wallets"] = int(
            conn.execute(allow.delete().where(allow.c.wallet_address.in_(spellings))).rowcount
        )

        # The views hold copies (wallet_segments is keyed by the address): recompute them in the same
        # transaction, so no reader ever sees the address after this commits.
        for view in VIEW_NAMES:
            refresh_view(conn, view, now=now)

        conn.execute(
            tables.admin_audit_log.insert().values(
                admin_user=actor[:64],
                action="gdpr.erase_wallet",
                metadata={"pseudonym": pseudonym, "counts": counts, "ips_pseudonymised": len(ip_map)},
                timestamp=now,
            )
        )
    return report
