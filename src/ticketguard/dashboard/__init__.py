"""The operator console: Flask (login, sessions, CSRF) + Dash (the six sections, review queue, actions)."""
