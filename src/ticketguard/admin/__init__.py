"""Admin accounts of the operator console: argon2id passwords, TOTP MFA, lockout, sessions, audit."""
