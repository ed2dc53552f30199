"""`ticketguard simulate` (placeholder until the import capability lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    return None
