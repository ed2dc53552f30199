"""Plumbing with no domain words: database, types, clock, logging, progress."""
