"""`ticketguard reviews …`: the review queue for analysts without the console (docs/reviews.md).

Every claim, release and decision is audited in admin_audit_log under --analyst (default: the OS user).
Exit codes: 0 done, 1 the case is taken, decided or not a review case, 2 bad input or no database.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine

from ticketguard.config import Settings
from ticketguard.reviews.domain import DECIDED, OUTCOMES, ReviewError, ReviewInvalid

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

reviews_app = typer.Typer(
    help="The MANUAL_REVIEW queue: list, show, claim, release, decide, stats (docs/reviews.md).",
    no_args_is_help=True,
)
ANALYST_HELP = "Who acts (audited); default: the OS user."
T = TypeVar("T")


@contextmanager
def _engine() -> Iterator[tuple[Settings, Engine]]:
    from ticketguard.cli import ready_settings
    from ticketguard.jobs.runtime import job_engine

    settings = ready_settings()
    engine = job_engine(settings)
    try:
        yield settings, engine
    finally:
        engine.dispose()


def _run(fn: Callable[[], T]) -> T:
    """Run a service call; a review error exits with its message (2 for bad input, 1 otherwise)."""
    try:
        return fn()
    except ReviewError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(code=2 if isinstance(exc, ReviewInvalid) else 1) from None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    return value


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


@reviews_app.command("list")
def list_command(
    limit: int = typer.Option(20, "--limit", min=1, max=500, help="Cases to show."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many (oldest first)."),
    status: str = typer.Option(None, "--status", help="open or claimed (default: both)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of a table."),
) -> None:
    """Undecided MANUAL_REVIEW cases, oldest first (within REVIEW_QUEUE_HORIZON_DAYS)."""
    from ticketguard.reviews.service import queue

    now = datetime.now(UTC)
    with _engine() as (settings, engine), engine.connect() as conn:
        cases = _run(
            lambda: queue(
                conn,
                now=now,
                limit=limit,
                offset=offset,
                horizon=settings.review_queue_horizon,
                status=status,
            )
        )
    if as_json:
        out.print_json(json.dumps(_plain(cases)))
        return
    if not cases:
        out.print("the review queue is empty")
        return
    table = Table(title=f"review queue (as of {now:%Y-%m-%d %H:%M:%S} UTC)")
    for column in ("transaction", "age", "score", "wallet", "event", "price", "status", "top reason"):
        table.add_column(column)
    for case in cases:
        state = f"claimed by {case.claimed_by}" if case.status == "claimed" else case.status
        table.add_row(
            escape(case.transaction_id),
            _age(case.age_seconds(now)),
            "-" if case.score is None else f"{case.score:.3f}",
            case.wallet_address or "-",
            escape(case.event_id or "-"),
            "-" if case.price is None else f"{case.price.normalize():f}",
            escape(state),
            escape(case.reasons[0]) if case.reasons else "",
        )
    out.print(table)


@reviews_app.command("show")
def show_command(
    transaction_id: str = typer.Argument(..., help="The transaction of the case."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of text."),
) -> None:
    """A case with its features, contributions, reasons and the wallet's recent history."""
    from ticketguard.reviews.service import case_detail

    with _engine() as (_settings, engine), engine.connect() as conn:
        detail = _run(lambda: case_detail(conn, transaction_id))
    if as_json:
        out.print_json(json.dumps(_plain(detail)))
        return
    case = detail["case"]
    out.print(
        f"[bold]{escape(case.transaction_id)}[/bold]  {case.decision}  score {case.score}  {case.status}"
    )
    if case.status == DECIDED:
        out.print(
            f"decided {case.outcome} by {escape(str(case.decided_by))} at {case.decided_at:%Y-%m-%d %H:%M:%S}"
        )
        out.print(f"note: {escape(case.note or '')}")
    elif case.claimed_by:
        out.print(f"claimed by {escape(case.claimed_by)} until {case.claim_expires_at:%H:%M:%S} UTC")
    out.print(f"wallet {case.wallet_address}  event {escape(case.event_id or '-')}  price {case.price}")
    for reason in detail["reasons"]:
        out.print(f"  - {escape(reason)}")
    contributions = Table(title="top contributions")
    for column in ("feature", "value", "contribution"):
        contributions.add_column(column)
    for item in detail["contributions"]:
        contributions.add_row(
            escape(str(item.get("feature"))), str(item.get("value")), f"{item.get('contribution', 0):+.3f}"
        )
    out.print(contributions)
    features = Table(title="features")
    features.add_column("feature")
    features.add_column("value")
    for name, value in sorted(detail["features"].items()):
        features.add_row(escape(name), str(value))
    out.print(features)
    history = Table(title=f"wallet history {detail['wallet_summary']}")
    for column in ("time (UTC)", "transaction", "event", "price", "decision", "score", "label"):
        history.add_column(column)
    for h in detail["wallet_history"]:
        label = "" if h["labelled_fraud"] is None else ("fraud" if h["labelled_fraud"] else "legit")
        history.add_row(
            f"{h['timestamp']:%Y-%m-%d %H:%M}",
            escape(h["transaction_id"]),
            escape(h["event_id"]),
            str(h["price_paid"]),
            h["decision"] or "-",
            "-" if h["fraud_score"] is None else f"{h['fraud_score']:.3f}",
            label,
        )
    out.print(history)


@reviews_app.command("claim")
def claim_command(
    transaction_id: str = typer.Argument(..., help="The transaction of the case."),
    analyst: str = typer.Option(None, "--analyst", help=ANALYST_HELP),
    seconds: int = typer.Option(None, "--seconds", help="Claim length; default REVIEW_CLAIM_SECONDS."),
) -> None:
    """Claim a case: nobody else may decide it until the claim expires or is released."""
    from ticketguard.reviews.service import claim

    now = datetime.now(UTC)
    with _engine() as (settings, engine), engine.begin() as conn:
        case = _run(
            lambda: claim(
                conn,
                transaction_id,
                analyst=analyst or getpass.getuser(),
                now=now,
                ttl_seconds=seconds or settings.review_claim_seconds,
            )
        )
    out.print(
        f"{escape(case.transaction_id)} claimed by {escape(str(case.claimed_by))} "
        f"until {case.claim_expires_at:%Y-%m-%d %H:%M:%S} UTC"
    )


@reviews_app.command("release")
def release_command(
    transaction_id: str = typer.Argument(..., help="The transaction of the case."),
    analyst: str = typer.Option(None, "--analyst", help=ANALYST_HELP),
) -> None:
    """Give a claim back: the case is open again."""
    from ticketguard.reviews.service import release

    now = datetime.now(UTC)
    with _engine() as (_settings, engine), engine.begin() as conn:
        _run(lambda: release(conn, transaction_id, analyst=analyst or getpass.getuser(), now=now))
    out.print(f"{escape(transaction_id)} released")


@reviews_app.command("decide")
def decide_command(
    transaction_id: str = typer.Argument(..., help="The transaction of the case."),
    outcome: str = typer.Option(..., "--outcome", help=f"One of: {', '.join(OUTCOMES)}."),
    note: str = typer.Option(..., "--note", help="Why (required, up to 2000 characters)."),
    analyst: str = typer.Option(None, "--analyst", help=ANALYST_HELP),
) -> None:
    """Decide a case fraud or legitimate: stored as a label (source analyst), audited, and sent to
    REVIEW_CALLBACK_URL when set. Needs your claim, or an open case."""
    from ticketguard.reviews.service import decide

    now = datetime.now(UTC)
    with _engine() as (settings, engine), engine.begin() as conn:
        case = _run(
            lambda: decide(
                conn,
                transaction_id,
                analyst=analyst or getpass.getuser(),
                outcome=outcome,
                note=note,
                now=now,
                settings=settings,
            )
        )
    callback = " (callback queued)" if settings.review_callback_url else ""
    out.print(
        f"{escape(case.transaction_id)} decided {case.outcome} by {escape(str(case.decided_by))}{callback}"
    )


@reviews_app.command("stats")
def stats_command(
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of text."),
) -> None:
    """Queue size, how many are claimed, and the age of the oldest case."""
    from ticketguard.reviews.service import queue_stats

    now = datetime.now(UTC)
    with _engine() as (settings, engine), engine.connect() as conn:
        stats = queue_stats(conn, now=now, horizon=settings.review_queue_horizon)
    if as_json:
        out.print_json(json.dumps({**_plain(stats), "as_of": now.isoformat()}))
        return
    oldest = "-" if stats.oldest_age_seconds is None else _age(stats.oldest_age_seconds)
    out.print(f"{stats.size} undecided ({stats.claimed} claimed), oldest {oldest}")


def register(app: typer.Typer) -> None:
    app.add_typer(reviews_app, name="reviews")
