"""Retention: archive and purge by the policy in settings, and GDPR erasure of one wallet."""
