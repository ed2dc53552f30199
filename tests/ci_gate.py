"""The one rule for a test whose service or tool is missing: skipped (with its reason) on a developer's
machine, a failure with CI=true — in CI every test must run."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str, reason: str) -> None:
    """Skip off CI; fail under CI=true. Never returns."""
    message = f"{what}: {reason}"
    if IN_CI:
        pytest.fail(f"{message} — with CI=true every {what} test must run", pytrace=False)
    pytest.skip(message)
