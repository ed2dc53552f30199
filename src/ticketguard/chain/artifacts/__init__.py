"""Compiled contract artifacts (JSON), rebuilt by contracts/build.sh."""
