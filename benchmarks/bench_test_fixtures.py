"""What the test fixtures cost per test: N trivial PostgreSQL tests (each takes `postgres_url`, opens the
database, runs one query) under the shared conftest of a git ref and under the working tree's.

    .venv/bin/python benchmarks/bench_test_fixtures.py                 # main vs the working tree, 40 tests
    .venv/bin/python benchmarks/bench_test_fixtures.py --refs main HEAD --tests 60 --rounds 3

Reports the wall time of the pytest run and the per-test fixture time (setup + teardown, from pytest's
--durations) — the overhead every PostgreSQL test pays before it does anything. Needs the PostgreSQL the
tests use. The machine is shared: run a few rounds and read the medians.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TEST_FILE = """
import pytest
from sqlalchemy import create_engine, text


@pytest.mark.parametrize("i", range({n}))
def test_trivial(postgres_url: str, i: int) -> None:
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM transactions")).scalar() == 0
    engine.dispose()
"""


def _shared_test_files(ref: str) -> dict[str, str]:
    """tests/conftest.py and the fixture modules beside it (which it may load as plugins), at ``ref``."""
    if ref == "worktree":
        return {p.name: p.read_text() for p in (ROOT / "tests").glob("*.py") if p.name != "load_test.py"}
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{ref}:tests"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        name: subprocess.run(
            ["git", "show", f"{ref}:tests/{name}"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
        for name in names
        if name.endswith(".py") and name != "load_test.py"
    }


def _run(ref: str, n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="tg-bench-fixtures-") as tmp:
        base = Path(tmp)
        for name, text in _shared_test_files(ref).items():
            (base / name).write_text(text)
        (base / "test_trivial.py").write_text(TEST_FILE.format(n=n))
        (base / "pytest.ini").write_text("[pytest]\n")
        started = time.monotonic()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--durations=0",
                "-vv",
                str(base),
            ],
            cwd=base,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
    if out.returncode != 0:
        raise SystemExit(out.stdout[-3000:] + out.stderr[-2000:])
    fixture = 0.0
    for line in out.stdout.splitlines():
        m = re.match(r"^([0-9.]+)s (setup|teardown)\s+.*test_trivial\[", line)
        if m:
            fixture += float(m.group(1))
    return wall, fixture / n


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--refs", nargs="+", default=["main", "worktree"], help="git refs, or 'worktree'")
    parser.add_argument("--tests", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.tests} trivial PostgreSQL tests, {args.rounds} rounds (median)")
    print("| conftest | pytest wall s | fixture s per test (setup + teardown) |")
    print("| --- | --- | --- |")
    for ref in args.refs:
        runs = [_run(ref, args.tests) for _ in range(args.rounds)]
        wall = statistics.median(w for w, _ in runs)
        per_test = statistics.median(f for _, f in runs)
        print(f"| {ref} | {wall:.1f} | {per_test:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
