"""Structured JSON logs with redaction, installed once at process start (CLI and API).

Two layers, so that no handler can forget: a log-record factory scrubs every record's message as it is
created (whoever formats it later — uvicorn, the job worker, a library — sees the clean text), and the
JSON formatter scrubs the structured ``extra`` fields and tracebacks. JSON encoding escapes CR/LF, and the
redactor writes them out as ``\\n`` before that, so a forged "second log line" is never a line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ticketguard.security.redact import Redactor

if TYPE_CHECKING:
    from ticketguard.config import Settings

_STANDARD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

_redactor = Redactor()
_base_factory = logging.getLogRecordFactory()
_installed = False


def redactor() -> Redactor:
    return _redactor


def _scrubbing_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not lose the record
        message = f"{record.msg!r} {record.args!r}"
    record.msg = _redactor.text(message)
    record.args = None
    return record


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and the ``extra`` fields, all redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _redactor.text(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_FIELDS and not key.startswith("_"):
                entry[key] = _redactor.value(value, key)
        if record.exc_info:
            entry["exc"] = _redactor.text(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=True)


def install_redaction(secrets: list[str] | None = None) -> None:
    """Scrub every log record of this process (idempotent); ``secrets`` are exact values to hide."""
    global _installed
    for secret in secrets or ():
        _redactor.add_secret(secret)
    if not _installed:
        logging.setLogRecordFactory(_scrubbing_factory)
        _installed = True


def configure_logging(level: str = "INFO", secrets: list[str] | None = None, stream: Any = None) -> None:
    """JSON lines on stderr for the root logger and uvicorn's loggers, with redaction installed."""
    install_redaction(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    # Replace the console handlers (basicConfig's, a previous call's); keep a test runner's capture handlers.
    kept = [h for h in root.handlers if type(h).__module__.startswith("_pytest")]
    root.handlers[:] = [*kept, handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        # uvicorn turns its access log off (`serve api` asks it to) by leaving that logger without a
        # handler and not propagating: keep it off, or every request would be a line again.
        enabled = name != "uvicorn.access" or bool(logger.handlers) or logger.propagate
        logger.handlers[:] = []
        logger.propagate = enabled


def install_secrets(settings: Settings) -> None:
    """Redaction for this process, including the exact values of the configured secrets."""
    from ticketguard.security.keys import configured_secrets

    install_redaction(configured_secrets(settings))
