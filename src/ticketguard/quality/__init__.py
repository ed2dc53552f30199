"""Data-quality checks: required columns, duplicates, freshness and volume, recorded and alerted."""
