"""Review-queue rules as pure functions of values: what a case's status is at a moment, what an analyst may
send. No database, no clock: the service passes ``now`` in."""

from __future__ import annotations

from datetime import datetime

OPEN, CLAIMED, DECIDED = "open", "claimed", "decided"
OUTCOMES = ("fraud", "legitimate")
MAX_NOTE_CHARS = 2000
MAX_ANALYST_CHARS = 64
MAX_CLAIM_SECONDS = 86_400
DEFAULT_CLAIM_SECONDS = 900
# What the read API calls each status (the backend's words: it waits for a decision).
API_STATUS = {OPEN: "pending", CLAIMED: "claimed", DECIDED: "decided"}
NOT_A_REVIEW_CASE = "not_a_review_case"


class ReviewError(ValueError):
    """A review action that cannot be done; the message says why."""


class ReviewNotFound(ReviewError):
    """No MANUAL_REVIEW case with that transaction id."""


class ReviewConflict(ReviewError):
    """Another analyst holds the claim, or the case is already decided."""


class ReviewInvalid(ReviewError):
    """Bad input: the message names the field and what is accepted."""


def effective_status(
    stored: str | None, claim_expires_at: datetime | None, now: datetime
) -> tuple[str, bool]:
    """(status, claim_live): a case without a row, released, or whose claim ran out is open."""
    if stored == DECIDED:
        return DECIDED, False
    if stored == CLAIMED and claim_expires_at is not None and claim_expires_at > now:
        return CLAIMED, True
    return OPEN, False


def check_analyst(analyst: object) -> str:
    if not isinstance(analyst, str) or not analyst.strip():
        raise ReviewInvalid("analyst must be a non-empty name")
    name = analyst.strip()
    if len(name) > MAX_ANALYST_CHARS:
        raise ReviewInvalid(f"analyst must be at most {MAX_ANALYST_CHARS} characters, got {len(name)}")
    return name


def check_outcome(outcome: object) -> str:
    if outcome not in OUTCOMES:
        raise ReviewInvalid(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    return str(outcome)


def check_note(note: object) -> str:
    if not isinstance(note, str) or not note.strip():
        raise ReviewInvalid("note is required: say why (1-2000 characters)")
    text = note.strip()
    if len(text) > MAX_NOTE_CHARS:
        raise ReviewInvalid(f"note must be at most {MAX_NOTE_CHARS} characters, got {len(text)}")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
        raise ReviewInvalid("note must not contain control characters (other than newline and tab)")
    return text


def check_claim_seconds(seconds: object) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ReviewInvalid(f"claim duration must be a number of seconds, got {seconds!r}")
    if not 1 <= seconds <= MAX_CLAIM_SECONDS:
        raise ReviewInvalid(f"claim duration must be 1-{MAX_CLAIM_SECONDS} seconds, got {seconds}")
    return int(seconds)


def check_transaction_id(transaction_id: object) -> str:
    if not isinstance(transaction_id, str) or not transaction_id or len(transaction_id) > 64:
        raise ReviewInvalid("transaction_id must be 1-64 characters")
    return transaction_id


def callback_key(transaction_id: str, outcome: str) -> str:
    """The callback's idempotency key: a receiver that sees it twice has already acted on it."""
    return f"review:{transaction_id}:{outcome}"


def callback_ordering_key(transaction_id: str) -> str:
    return f"review:{transaction_id}"
