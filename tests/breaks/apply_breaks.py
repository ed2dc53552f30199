"""Deliberate breaks of the code, one at a time, each followed by the tests that claim to guard it.

    .venv/bin/python tests/breaks/apply_breaks.py         # every break, after a clean run of its tests
    .venv/bin/python tests/breaks/apply_breaks.py --list
    .venv/bin/python tests/breaks/apply_breaks.py refresh-not-concurrent retention-commit-between

Each break is a text patch of the source (an exact snippet replaced by a broken one; the script refuses to
run if a snippet no longer matches, so a refactoring cannot silently turn a break into a no-op). The patched
files are restored afterwards, also on Ctrl-C. A break is *caught* when its tests fail (pytest exit 1) and
the same tests pass on the unbroken code (every pytest output goes to .breaks/last-run.log). Not part of
`make test`: it reruns the relevant tests once per
break (a few minutes). Needs what the tests need: PostgreSQL and a redis-server binary.

The first six rows are the breaks of issue 12 that the suite used to miss; the rest guard claims added with
them. Results go to stdout as a Markdown table (docs/testing.md keeps the last run).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
LOG = ROOT / ".breaks" / "last-run.log"


@dataclass(frozen=True)
class Patch:
    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Break:
    name: str
    what: str
    patches: tuple[Patch, ...]
    tests: tuple[str, ...]


RUN = "tests/integration/test_retention_run.py::"
RETENTION_TESTS = (
    RUN + "test_a_fault_between_archive_and_delete_or_after_it_rolls_the_batch_back",
    RUN + "test_a_delete_that_fails_takes_its_archive_insert_back_with_it",
)
EPOCH_TEST = RUN + "test_retention_run_by_the_cli_or_the_job_moves_the_feature_state_epoch"
SERVE_TEST = (
    "tests/integration/test_api_serve.py::"
    + "test_two_workers_answer_share_metrics_and_store_one_answer_per_raced_id"
)
DURABLE_TEST = (
    "tests/integration/test_group_commit.py::"
    + "test_the_committer_commits_durably_on_every_connection_it_writes_with"
)

# PostgreSQL's move as two statements in two transactions (the archive INSERT committed before the DELETE).
PG_SPLIT = """        inserted = conn.execute(
            text(
                f'INSERT INTO "{rule.archive_table}" ({columns}, "archived_at") '
                f'SELECT {columns}, :now FROM "{rule.table}" WHERE {key} IN '
                f'(SELECT {key} FROM "{rule.table}" WHERE {ts} < :cutoff ORDER BY {ts} LIMIT :limit)'
            ).bindparams(*_params(cutoff, limit, now))
        ).rowcount
        conn.exec_driver_sql("COMMIT")
        if inserted:
            _reached(checkpoint, "archived")
        deleted = conn.execute(
            text(
                f'DELETE FROM "{rule.table}" WHERE {key} IN (SELECT {key} FROM "{rule.archive_table}")'
            )
        ).rowcount
        if deleted:
            _reached(checkpoint, "deleted")
        return int(inserted)
"""

BREAKS: tuple[Break, ...] = (
    Break(
        "refresh-not-concurrent",
        "`views/refresh.py` refreshes without CONCURRENTLY",
        (
            Patch(
                "src/ticketguard/views/refresh.py",
                'mode = "CONCURRENTLY " if concurrently else ""',
                'mode = ""',
            ),
        ),
        ("tests/integration/test_views_refresh.py::test_postgres_refresh_job_does_not_block_a_reader",),
    ),
    Break(
        "sqlite-journal-delete",
        "SQLite journal mode DELETE instead of WAL (the kit's engine and the API's)",
        (
            Patch("src/ticketguard/kit/db.py", "PRAGMA journal_mode=WAL", "PRAGMA journal_mode=DELETE"),
            Patch("src/ticketguard/api/app.py", '("journal_mode=WAL",', '("journal_mode=DELETE",'),
        ),
        (
            "tests/integration/test_views_refresh.py::test_sqlite_refresh_commits_while_a_reader_holds_its_snapshot",
        ),
    ),
    Break(
        "retention-commit-between",
        "retention's archive INSERT and live DELETE committed in separate transactions (SQLite path)",
        (
            Patch(
                "src/ticketguard/retention/repository.py",
                '    if inserted:\n        _reached(checkpoint, "archived")',
                # COMMIT through the driver: SQLAlchemy does not see it, the DELETE runs in a new transaction
                # that the batch's own commit then commits — the normal path still works.
                '    conn.exec_driver_sql("COMMIT")\n'
                '    if inserted:\n        _reached(checkpoint, "archived")',
            ),
        ),
        RETENTION_TESTS,
    ),
    Break(
        "retention-commit-between-pg",
        "the same on PostgreSQL: the one-statement move split into INSERT, COMMIT, DELETE",
        (
            Patch(
                "src/ticketguard/retention/repository.py",
                "        moved = int(conn.execute(statement).rowcount)\n"
                "        if moved:\n"
                '            _reached(checkpoint, "archived")\n'
                '            _reached(checkpoint, "deleted")\n'
                "        return moved\n",
                "        del statement\n" + PG_SPLIT,
            ),
        ),
        tuple(f"{t}" for t in RETENTION_TESTS),
    ),
    Break(
        "race-reported-as-own-write",
        "a lost cross-worker idempotency race reported as our own write (`scoring/store.py` conflict path)",
        (
            Patch(
                "src/ticketguard/scoring/store.py",
                "                    if stored is not None:\n"
                '                        return WriteOutcome("duplicate", stored)',
                "                    if stored is not None:\n"
                '                        return WriteOutcome("written")',
            ),
        ),
        (SERVE_TEST,),
    ),
    Break(
        "committer-synchronous-commit-off",
        "the committer sets synchronous_commit=off",
        (
            Patch(
                "src/ticketguard/scoring/store.py",
                "                        ensure_durable_commits(conn)\n"
                "                        fresh = _write_rows_postgres(conn, batch)",
                "                        ensure_durable_commits(conn)\n"
                '                        conn.exec_driver_sql("SET synchronous_commit = off")\n'
                "                        fresh = _write_rows_postgres(conn, batch)",
            ),
        ),
        (f"{DURABLE_TEST}[postgres]",),
    ),
    Break(
        "epoch-bump-removed-cli",
        "the epoch bump after retention removed from `retention/cli.py`",
        (
            Patch(
                "src/ticketguard/retention/cli.py",
                "            tell_feature_state(settings, report)",
                "            del tell_feature_state",
            ),
        ),
        (EPOCH_TEST,),
    ),
    Break(
        "epoch-bump-removed-job",
        "the epoch bump after retention removed from `jobs/registry.py`",
        (
            Patch(
                "src/ticketguard/jobs/registry.py",
                "    tell_feature_state(ctx.settings, report)",
                "    del tell_feature_state",
            ),
        ),
        (EPOCH_TEST,),
    ),
    # ---- claims added with issue 12
    Break(
        "committer-not-enforcing-on",
        "the committer trusts the database's default (no SET synchronous_commit = on)",
        (
            Patch(
                "src/ticketguard/scoring/store.py",
                '            conn.exec_driver_sql("SET synchronous_commit = on")',
                "            pass",
            ),
        ),
        (f"{DURABLE_TEST}[postgres]",),
    ),
    Break(
        "sqlite-committer-synchronous-normal",
        "the committer's SQLite connections keep synchronous=NORMAL",
        (
            Patch(
                "src/ticketguard/scoring/store.py",
                'conn.exec_driver_sql("PRAGMA synchronous = FULL")',
                'conn.exec_driver_sql("PRAGMA synchronous = NORMAL")',
            ),
        ),
        (f"{DURABLE_TEST}[sqlite]",),
    ),
    Break(
        "simulate-replace-live-only",
        "`simulate --replace` looks only at live rows (the bug of issue 12, put back)",
        (
            Patch(
                "src/ticketguard/simulate/service.py",
                "for t in (tables.transactions, tables.transactions_archive)",
                "for t in (tables.transactions,)",
            ),
            Patch(
                "src/ticketguard/history.py",
                "for table in (tables.transactions, tables.transactions_archive):",
                "for table in (tables.transactions,):",
            ),
        ),
        (
            "tests/integration/test_simulate_cli.py::test_replace_after_retention_archived_part_of_the_simulation",
        ),
    ),
    Break(
        "simulate-replace-keeps-orphan-labels",
        "`simulate --replace` leaves the labels of purged simulated transactions",
        (
            Patch(
                "src/ticketguard/history.py",
                '.where(tables.fraud_labels.c.source == "simulator")',
                '.where(tables.fraud_labels.c.source == "never")',
            ),
        ),
        (
            "tests/integration/test_simulate_cli.py::test_replace_after_retention_purged_every_simulated_transaction",
        ),
    ),
)


OUTBOX = "tests/integration/test_delivery_outbox.py::"

# The same exercise on claims another room added in this tranche (the delivery outbox: leased claims,
# retries with backoff, Retry-After), run separately: `apply_breaks.py --outbox`.
OUTBOX_BREAKS: tuple[Break, ...] = (
    Break(
        "outbox-claim-not-locked",
        "the outbox claim without FOR UPDATE SKIP LOCKED",
        (Patch("src/ticketguard/delivery/outbox.py", "        .with_for_update(skip_locked=True)\n", ""),),
        (OUTBOX + "test_concurrent_deliverers_never_send_one_message_twice",),
    ),
    Break(
        "outbox-one-try-too-many",
        "the outbox retries once more than OUTBOX_MAX_ATTEMPTS",
        (
            Patch(
                "src/ticketguard/delivery/outbox.py",
                "if error.retryable and message.attempts < policy.max_attempts:",
                "if error.retryable and message.attempts <= policy.max_attempts:",
            ),
        ),
        (OUTBOX + "test_after_the_last_try_the_message_is_dead_and_can_be_queued_again",),
    ),
    Break(
        "outbox-backoff-not-exponential",
        "the outbox waits the base delay every time instead of doubling it",
        (
            Patch(
                "src/ticketguard/delivery/outbox.py",
                "self.base_seconds * 2 ** max(attempts - 1, 0))",
                "self.base_seconds * 1 ** max(attempts - 1, 0))",
            ),
        ),
        (OUTBOX + "test_failures_are_retried_with_backoff_and_delivered_once",),
    ),
    Break(
        "outbox-retry-after-ignored",
        "the outbox ignores the receiver's Retry-After",
        (
            Patch(
                "src/ticketguard/delivery/outbox.py",
                "backoff = max(backoff, min(retry_after, self.max_seconds))",
                "backoff = max(backoff, 0.0)",
            ),
        ),
        (OUTBOX + "test_retry_after_is_honoured_up_to_the_maximum_delay",),
    ),
)


def _apply(patches: tuple[Patch, ...]) -> dict[Path, str]:
    originals: dict[Path, str] = {}
    for patch in patches:
        path = ROOT / patch.path
        text = originals.get(path) or path.read_text()
        originals.setdefault(path, text)
        current = path.read_text()
        if current.count(patch.old) != 1:
            raise SystemExit(
                f"{patch.path}: the snippet to break occurs {current.count(patch.old)} times:\n{patch.old}"
            )
        path.write_text(current.replace(patch.old, patch.new))
    return originals


def _restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text)


def _run_tests(tests: tuple[str, ...]) -> tuple[int, list[str], float]:
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"COLUMNS": "400"}
    started = time.monotonic()
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-n",
            "0",
            "-rf",
            *tests,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    failed = [line[len("FAILED ") :] for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as log:  # the whole output, to read why a run failed
        log.write(f"\n===== exit {result.returncode}: {' '.join(tests)}\n{result.stdout}\n{result.stderr}\n")
    return result.returncode, failed, time.monotonic() - started


# --- operator console (issue 14): `apply_breaks.py --console` ----------------------------------------------
ACCOUNTS = "tests/integration/test_admin_accounts.py::"
WEB = "tests/integration/test_console_web.py::"
CONSOLE_BREAKS: tuple[Break, ...] = (
    Break(
        "totp-replay-allowed",
        "a TOTP code of an already accepted step is accepted again",
        (
            Patch(
                "src/ticketguard/admin/login.py",
                "or_(t.c.totp_last_step.is_(None), t.c.totp_last_step < step)",
                "or_(t.c.totp_last_step.is_(None), t.c.totp_last_step <= step + 100)",
            ),
        ),
        (ACCOUNTS + "test_login_needs_password_and_code_and_a_code_is_accepted_once[sqlite]",),
    ),
    Break(
        "no-lockout",
        "five failures in five minutes do not lock the account",
        (
            Patch(
                "src/ticketguard/admin/login.py",
                "if failed >= settings.admin_lockout_threshold and",
                "if failed >= 10 * settings.admin_lockout_threshold and",
            ),
        ),
        (ACCOUNTS + "test_five_failures_in_five_minutes_lock_the_account_with_a_high_event[sqlite]",),
    ),
    Break(
        "unknown-user-answers-fast",
        "an unknown username skips the argon2 verification (timing tells who exists)",
        (
            Patch(
                "src/ticketguard/admin/login.py",
                "        passwords.verify_dummy(password)\n",
                "        pass\n",
            ),
        ),
        (ACCOUNTS + "test_unknown_user_fails_like_a_wrong_password_and_as_slowly[sqlite]",),
    ),
    Break(
        "no-csrf-on-callbacks",
        "Dash callbacks run without the session's CSRF token",
        (
            Patch(
                "src/ticketguard/dashboard/web.py",
                "        if not session.csrf_ok(supplied):",
                "        if False and not session.csrf_ok(supplied):",
            ),
        ),
        (WEB + "test_dash_callbacks_need_a_session_and_its_csrf_token[sqlite]",),
    ),
    Break(
        "no-role-check",
        "the admin-action callback and the action service both skip the role check",
        (
            Patch(
                "src/ticketguard/dashboard/app.py",
                "    if not user.is_admin:\n        web.audit_denied",
                "    if False:\n        web.audit_denied",
            ),
            Patch(
                "src/ticketguard/dashboard/actions.py",
                "    if not user.is_admin:\n        raise ActionDenied",
                "    if False:\n        raise ActionDenied",
            ),
        ),
        (WEB + "test_analyst_is_refused_admin_actions_inside_the_callback[sqlite]",),
    ),
    Break(
        "no-idle-timeout",
        "a session idle for longer than ADMIN_SESSION_IDLE_MINUTES still works",
        (
            Patch(
                "src/ticketguard/admin/sessions.py", "    if row.last_seen_at + idle <= now:", "    if False:"
            ),
        ),
        (WEB + "test_expired_and_logged_out_sessions_are_refused[sqlite]",),
    ),
    Break(
        "refresh-extends-idle",
        "the sections' timer refreshes count as user activity",
        (Patch("src/ticketguard/dashboard/web.py", "touch=not _background_refresh()", "touch=True"),),
        (WEB + "test_automatic_refreshes_do_not_extend_the_idle_timeout[sqlite]",),
    ),
    Break(
        "spoofable-forwarded-for",
        "the allow-list believes X-Forwarded-For from anyone",
        (
            Patch(
                "src/ticketguard/dashboard/web.py",
                "return client_ip(flask.request.remote_addr, "
                'flask.request.headers.getlist("X-Forwarded-For"), cfg.trusted)',
                'return (flask.request.headers.getlist("X-Forwarded-For") '
                'or [flask.request.remote_addr or ""])[0].split(",")[0].strip()',
            ),
        ),
        (WEB + "test_ip_allowlist_behind_trusted_proxies[sqlite]",),
    ),
    Break(
        "logout-client-side-only",
        "logout clears the cookie but leaves the session alive server-side",
        (
            Patch(
                "src/ticketguard/dashboard/web.py",
                "            sessions.revoke(conn, token, now=now_utc())\n",
                "            pass\n",
            ),
        ),
        (WEB + "test_expired_and_logged_out_sessions_are_refused[sqlite]",),
    ),
    Break(
        "realised-cells-swapped",
        "realised precision counts false positives as true ones",
        (
            Patch(
                "src/ticketguard/dashboard/queries.py",
                "tp, fp_ = counts.get((True, True), 0), counts.get((True, False), 0)",
                "tp, fp_ = counts.get((True, False), 0), counts.get((True, True), 0)",
            ),
        ),
        ("tests/integration/test_console_queries.py::test_section_queries_answer_what_the_rows_say[sqlite]",),
    ),
    Break(
        "dash-prepared-lazily",
        "each app is prepared by Dash at its first request, as Dash does by default",
        (Patch("src/ticketguard/dashboard/app.py", "    _prepare(app)\n", ""),),
        (WEB + "test_a_new_worker_serves_the_page_scripts_asked_for_all_at_once[sqlite]",),
    ),
    Break(
        "csp-allows-inline-scripts",
        "the console's CSP allows any inline script and eval",
        (
            Patch(
                "src/ticketguard/dashboard/web.py",
                """scripts = " ".join(("'self'", *script_hashes))""",
                """scripts = "'self' 'unsafe-inline' 'unsafe-eval'\"""",
            ),
        ),
        (WEB + "test_the_page_runs_only_its_own_scripts[sqlite]",),
    ),
)


def _short(failure: str) -> str:
    name, _, why = failure.partition(" - ")
    name = name.split("::")[-1]
    why = re.sub(r"\s+", " ", why)[:110]
    return f"`{name}`: {why}" if why else f"`{name}`"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="breaks to apply (default: all)")
    parser.add_argument("--list", action="store_true", help="list the breaks and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the clean run of each break's tests")
    parser.add_argument("--outbox", action="store_true", help="the delivery outbox's breaks instead")
    parser.add_argument("--console", action="store_true", help="the operator console's breaks instead")
    args = parser.parse_args()
    breaks = OUTBOX_BREAKS if args.outbox else BREAKS
    if args.console:
        breaks = CONSOLE_BREAKS
    if args.list:
        for b in breaks:
            print(f"{b.name:40} {b.what}")
        return 0
    chosen = [b for b in breaks if not args.names or b.name in args.names]
    unknown = set(args.names) - {b.name for b in breaks}
    if unknown:
        parser.error(f"unknown break(s) {', '.join(sorted(unknown))}; see --list")

    rows = []
    all_caught = True
    for b in chosen:
        baseline = "not run"
        if not args.no_baseline:
            code, failed, _ = _run_tests(b.tests)
            baseline = "pass" if code == 0 else f"FAIL ({code}): {'; '.join(failed)[:200]}"
        originals = _apply(b.patches)
        try:
            code, failed, seconds = _run_tests(b.tests)
        finally:
            _restore(originals)
        caught = code == 1 and bool(failed)
        all_caught &= caught and baseline in ("pass", "not run")
        verdict = "**caught**" if caught else f"NOT caught (pytest exit {code})"
        detail = "<br>".join(_short(f) for f in failed[:3])
        rows.append(f"| `{b.name}` | {b.what} | {baseline} | {verdict} in {seconds:.0f} s | {detail} |")
        print(rows[-1], flush=True)

    print()
    print("| break | what was broken | tests on clean code | with the break | failing tests (first 3) |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(row)
    print(f"\n{sum('**caught**' in r for r in rows)} of {len(rows)} breaks caught")
    return 0 if all_caught else 1


if __name__ == "__main__":
    sys.exit(main())
