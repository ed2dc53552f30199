"""Mutation testing (cosmic-ray) of the modules that carry durability and exactness claims — on demand,
never in CI (`make mutation`; 30–40 minutes on this shared 2-core machine with the sample caps below).

    .venv/bin/python benchmarks/mutation.py                    # every target
    .venv/bin/python benchmarks/mutation.py retention refresh  # some of them
    .venv/bin/python benchmarks/mutation.py --report           # survivors of the last run, no new run

cosmic-ray rewrites a module on disk, one mutation at a time, and runs a test command: a mutant *survives*
when the tests still pass. So the run happens in a copy of the committed src/ and tests/ (git HEAD) under
``--workdir`` (default ``.mutation/``), imported first through PYTHONPATH — the working tree is never
touched, and you can keep working while it runs. ``--resume`` carries on with an interrupted run's results
(the copy is made afresh: a killed run may have left a mutant on disk). Each target runs only the tests
relevant to its module, first failure ends a run (``-x``), one test process at a time.

Why cosmic-ray and not mutmut: mutmut 3 mutates a copy of the package in its own ``mutants/`` folder, and
with a src-layout package installed in editable mode the tests can import the unmutated tree instead (as
reported upstream for mutmut 3.5, boxed/mutmut#486; not retried here), so mutants would "survive" for the
wrong reason. cosmic-ray mutates in place and runs any command, which suits a copy imported through
PYTHONPATH.

Operators: cosmic-ray's core set less the families that only multiply the count without telling more —
each comparison is replaced by its negation and its boundary twin (== ↔ !=, < ↔ <=, > ↔ >=, is ↔ is not,
in ↔ not in, not the 5 others), each arithmetic operator by its inverse (+ ↔ -, * ↔ /), no bitwise/power
variants, no decorator removal, no variable replacement/insertion. The larger targets are capped at a
sample drawn with a fixed seed (``--sample N`` overrides; the rest are recorded as skipped), so a run stays
within 30–40 minutes on a machine shared by six engineers; ``--sample 100000`` tests every mutant (hours).

Results: a table per target (killed / survived / incompetent / timed out) and every survivor with its line,
printed and written to ``docs/mutation/survivors.md``; docs/testing.md triages them.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

PYTEST = f"{BIN / 'python'} -m pytest -x -q -p no:cacheprovider -p no:randomly -n 0"


@dataclass(frozen=True)
class Target:
    name: str
    modules: tuple[str, ...]
    tests: str  # arguments to pytest
    sample: int | None = None


TARGETS = (
    Target(
        "refresh",
        ("src/ticketguard/views/refresh.py",),
        "tests/integration/test_views_refresh.py",
    ),
    Target(
        "retention",
        (
            "src/ticketguard/retention/service.py",
            "src/ticketguard/retention/repository.py",
            "src/ticketguard/retention/policy.py",
        ),
        # SQLite only: the PostgreSQL move is one SQL string (not mutated); what Python decides around it is
        # shared by both dialects. erasure.py and cli.py (and their slower CLI/Redis tests) are left out.
        "tests/unit/test_retention_policy.py tests/integration/test_retention_run.py "
        "-k 'not postgres and not killed_retention_process and not epoch'",
        sample=20,
    ),
    Target(
        "store",
        ("src/ticketguard/scoring/store.py",),
        "tests/integration/test_group_commit.py tests/integration/test_api_scoring.py "
        "-k 'burst or durably or idempotent or concurrent or chain_etl'",
        sample=15,
    ),
    Target(
        "state",
        ("src/ticketguard/features/state.py",),
        "tests/integration/test_feature_state.py -k 'not postgres'",
        sample=10,
    ),
)

EXCLUDED_OPERATORS = [
    # arithmetic: keep + <-> -, * <-> /, // -> /, % -> // only
    r"core/ReplaceBinaryOperator_(?!Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Div|Mod_FloorDiv)",
    # comparisons: negation and boundary twins only
    r"core/ReplaceComparisonOperator_(?!Eq_NotEq|NotEq_Eq|Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Is_IsNot|IsNot_Is|"
    r"In_NotIn|NotIn_In)",
    r"core/RemoveDecorator",
    r"core/VariableReplacer",
    r"core/VariableInserter",
]


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "") + "'" for v in values) + "]"


def _prepare(workdir: Path) -> None:
    """A fresh copy of the committed src/, tests/ and pyproject.toml (git HEAD: neither uncommitted edits nor
    a mutant a killed run left on disk get in); the working tree itself is never mutated."""
    for name in ("src", "tests"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    archive = subprocess.run(
        ["git", "archive", "HEAD", "src", "tests", "pyproject.toml"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(workdir)], input=archive, check=True)
    if (ROOT / "contracts").exists() and not (workdir / "contracts").exists():
        (workdir / "contracts").symlink_to(ROOT / "contracts")


def _config(workdir: Path, target: Target) -> Path:
    path = workdir / f"{target.name}.toml"
    path.write_text(
        "[cosmic-ray]\n"
        f"module-path = {_toml_list(list(target.modules))}\n"
        "timeout = 240.0\n"
        "excluded-modules = []\n"
        f'test-command = "{PYTEST} {target.tests}"\n\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = {_toml_list(EXCLUDED_OPERATORS)}\n"
    )
    return path


def _env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(workdir / "src")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _stop_leftover_tests(workdir: Path) -> None:
    """cosmic-ray starts each test run in a session of its own (to kill it on a timeout), so stopping
    cosmic-ray leaves a running test behind: end every process of ours that imports from this copy."""
    marker = f"PYTHONPATH={workdir / 'src'}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                os.killpg(os.getpgid(int(proc.name)), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def _run(args: list[str], workdir: Path) -> None:
    subprocess.run(args, cwd=workdir, env=_env(workdir), check=True)


def _sample(session: Path, keep: int, seed: int = 12) -> int:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        pending = sorted(item.job_id for item in db.pending_work_items)
        if len(pending) <= keep:
            return len(pending)
        chosen = set(random.Random(seed).sample(pending, keep))
        skipped = [job for job in pending if job not in chosen]
        db.set_multiple_results(
            skipped, WorkResult(output="not in the sample", worker_outcome=WorkerOutcome.SKIPPED)
        )
    return keep


def _counts(session: Path) -> dict[str, int]:
    from cosmic_ray.work_db import WorkDB, use_db

    out = {"pending": 0, "killed": 0, "survived": 0, "incompetent": 0, "timeout": 0, "skipped": 0}
    with use_db(str(session), WorkDB.Mode.open) as db:
        out["pending"] = sum(1 for _ in db.pending_work_items)
        for _item, result in db.completed_work_items:
            if result.worker_outcome == "skipped":
                out["skipped"] += 1
            elif result.output == "timeout":
                out["timeout"] += 1
            elif result.test_outcome is None:
                out["incompetent"] += 1
            else:
                out[result.test_outcome.value] += 1
    return out


def _progress(name: str, session: Path, done: threading.Event) -> None:
    started = time.monotonic()
    while not done.wait(30):
        c = _counts(session)
        finished = c["killed"] + c["survived"] + c["incompetent"] + c["timeout"]
        total = finished + c["pending"]
        minutes = (time.monotonic() - started) / 60
        print(
            f"  {name}: {finished}/{total} mutants tested, {c['survived']} survived, {minutes:.0f} min",
            flush=True,
        )


def _survivors(workdir: Path, session: Path) -> list[tuple[str, int, str, str]]:
    from cosmic_ray.work_db import WorkDB, use_db

    rows = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.test_outcome != "survived":
                continue
            for m in item.mutations:
                line = m.start_pos[0]
                source = (workdir / m.module_path).read_text().splitlines()[line - 1].strip()
                rows.append((str(m.module_path), line, m.operator_name.removeprefix("core/"), source))
    return sorted(rows)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so a `kill` still runs the clean-up above
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", help=f"of {', '.join(t.name for t in TARGETS)} (default: all)")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".mutation")
    parser.add_argument("--sample", type=int, help="cap every target at this many mutants")
    parser.add_argument("--report", action="store_true", help="report the last run's sessions, run nothing")
    parser.add_argument(
        "--resume", action="store_true", help="carry on with the sessions of an interrupted run"
    )
    args = parser.parse_args()
    chosen = [t for t in TARGETS if not args.targets or t.name in args.targets]
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if not args.report:
        _prepare(workdir)

    summary, survivors = [], []
    for target in chosen:
        session = workdir / f"{target.name}.sqlite"
        minutes = float("nan")
        if not args.report:
            config = _config(workdir, target)
            started = time.monotonic()
            if not (args.resume and session.exists()):
                session.unlink(missing_ok=True)
                # The tests must pass on the unmutated copy, or every mutant would count as killed.
                baseline = subprocess.run(
                    shlex.split(f"{PYTEST} {target.tests}"),
                    cwd=workdir,
                    env=_env(workdir),
                    capture_output=True,
                )
                if baseline.returncode != 0:
                    print(baseline.stdout.decode(errors="replace")[-3000:])
                    raise SystemExit(f"{target.name}: the tests fail without any mutation; fix that first")
                _run([str(BIN / "cosmic-ray"), "init", str(config), str(session)], workdir)
                _run([str(BIN / "cr-filter-operators"), str(session), str(config)], workdir)
                cap = args.sample or target.sample
                if cap:
                    _sample(session, cap)
            print(f"{target.name}: {_counts(session)['pending']} mutants to test", flush=True)
            done = threading.Event()
            watcher = threading.Thread(target=_progress, args=(target.name, session, done), daemon=True)
            watcher.start()
            try:
                _run([str(BIN / "cosmic-ray"), "exec", str(config), str(session)], workdir)
            finally:
                done.set()
                _stop_leftover_tests(workdir)  # after Ctrl-C or a kill of this script
            minutes = (time.monotonic() - started) / 60
        c = _counts(session)
        tested = c["killed"] + c["survived"] + c["incompetent"] + c["timeout"]
        score = (c["killed"] + c["timeout"]) / max(1, c["killed"] + c["timeout"] + c["survived"])
        summary.append(
            f"| {target.name} | {tested} | {c['killed']} | {c['timeout']} | {c['survived']} | "
            f"{c['incompetent']} | {c['skipped']} | {score:.0%} | {minutes:.0f} |"
        )
        survivors += _survivors(workdir, session)

    lines = [
        "| target | tested | killed | timed out | survived | incompetent | skipped | score | minutes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *summary,
        "",
        "| module | line | operator | source line |",
        "| --- | --- | --- | --- |",
        *[
            f"| {m.removeprefix('src/ticketguard/')} | {line} | {op} | `{src[:90]}` |"
            for m, line, op, src in survivors
        ],
    ]
    report = "\n".join(lines)
    print(report)
    out = ROOT / "docs" / "mutation" / "survivors.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Mutation testing: last run\n\nWritten by `benchmarks/mutation.py` (triage: docs/testing.md).\n\n"
        + report
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
