"""Security layer: client auth, rate limits, block and allow lists, security events, correlation rules and
their automated responses, and the redacting JSON log format. See docs/security.md."""
