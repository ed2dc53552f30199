"""Features: one catalogue (`specs`), run offline over a history and online per request."""
