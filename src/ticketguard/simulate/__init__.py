"""simulate capability."""
