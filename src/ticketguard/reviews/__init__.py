"""The review queue: MANUAL_REVIEW decisions claimed and decided by analysts (docs/reviews.md)."""
