"""`python -m ticketguard` runs the CLI (same as the `ticketguard` console script)."""

from ticketguard.cli import main

main()
