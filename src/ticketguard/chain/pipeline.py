"""The chain ETL: confirmed blocks of the TicketNFT contract → `transactions` and `events`, resumably.

One run, batch by batch (`CHAIN_BATCH_BLOCKS` blocks each):

1. The safe head is `head - CHAIN_CONFIRMATIONS`; nothing above it is read.
2. Read the batch's logs, then the headers of the blocks holding them, of the batch's last block and of
   the cursor's block. A log whose block hash is not the canonical one means the chain moved while we
   read: the batch is read again (bounded, with backoff).
3. If the cursor's block hash is no longer canonical, a reorganisation reached blocks already loaded:
   walk back the checkpoints to the newest block the chain still agrees on, delete the chain rows above
   it, move the cursor there and read on. Deeper than every kept checkpoint, the run stops
   (`ReorgTooDeep`) and a person rewinds with `ticketguard etl rewind`.
4. Decode, then in ONE database transaction: insert the rows (ON CONFLICT DO NOTHING on tx hash + log
   index), upsert the events, record the checkpoint and move the cursor (compare-and-set, so two runs
   at once cannot both commit the same range). A crash anywhere leaves the cursor and the rows agreeing.

Provider calls that fail transiently are retried with exponential backoff and jitter, at most
`CHAIN_RETRY_ATTEMPTS` tries each.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import Engine

from ticketguard.chain import repository as repo
from ticketguard.chain.decode import decode_logs, event_row, position_of, transaction_row
from ticketguard.chain.reader import BlockHeader, ChainReader, ProviderUnavailable

if TYPE_CHECKING:
    from ticketguard.config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_CHECKPOINTS_KEPT = 64
# A chain that reorganises again right after every rewind (or a load balancer alternating between nodes
# that disagree) must stop the run, not loop forever.
MAX_REWINDS_PER_RUN = 8


class EtlError(Exception):
    """The run stopped; the database holds every batch committed before, and nothing of this one."""


class ProviderFailed(EtlError):
    """A provider call still failed after every retry."""


class ReorgTooDeep(EtlError):
    """A reorganisation reaches below every kept checkpoint; rewinding needs a person's decision."""


class ConcurrentRun(EtlError):
    """Another ETL run moved the cursor while this one worked."""


class _ChainMoved(Exception):
    """The chain changed between reading logs and reading their blocks; read the batch again."""


class _CursorOrphaned(Exception):
    def __init__(self, cursor: repo.Cursor) -> None:
        super().__init__(f"block {cursor.last_block} {cursor.last_block_hash} is no longer canonical")
        self.cursor = cursor


@dataclass(frozen=True)
class EtlConfig:
    contract_address: str
    start_block: int = 0
    confirmations: int = 12
    batch_blocks: int = 2000
    retry_attempts: int = 5
    retry_base_delay_s: float = 0.5
    retry_max_delay_s: float = 30.0
    checkpoints_kept: int = DEFAULT_CHECKPOINTS_KEPT

    def __post_init__(self) -> None:
        problems = []
        if self.start_block < 0:
            problems.append(f"start_block must be >= 0, got {self.start_block}")
        if self.confirmations < 0:
            problems.append(f"confirmations must be >= 0, got {self.confirmations}")
        if self.batch_blocks < 1:
            problems.append(f"batch_blocks must be >= 1, got {self.batch_blocks}")
        if self.retry_attempts < 1:
            problems.append(f"retry_attempts must be >= 1, got {self.retry_attempts}")
        if self.checkpoints_kept < 2:
            problems.append(f"checkpoints_kept must be >= 2, got {self.checkpoints_kept}")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_settings(cls, settings: Settings) -> EtlConfig:
        if not settings.contract_address:
            raise ValueError("CONTRACT_ADDRESS is not set: give the TicketNFT contract's 0x address")
        return cls(
            contract_address=settings.contract_address,
            start_block=settings.chain_start_block,
            confirmations=settings.chain_confirmations,
            batch_blocks=settings.chain_batch_blocks,
            retry_attempts=settings.chain_retry_attempts,
            retry_base_delay_s=settings.chain_retry_base_delay.total_seconds(),
            retry_max_delay_s=settings.chain_retry_max_delay.total_seconds(),
        )


@dataclass(frozen=True)
class BatchResult:
    from_block: int
    to_block: int
    logs: int
    rows_inserted: int
    events_upserted: int
    read_s: float = 0.0  # waiting for the provider (logs and headers, retries included)
    write_s: float = 0.0  # decoding and the database transaction

    @property
    def blocks(self) -> int:
        return self.to_block - self.from_block + 1


@dataclass
class EtlReport:
    cursor_name: str
    start_cursor: int  # the cursor's block when the run began (start block - 1 on a fresh database)
    last_block: int  # the cursor's block when the run ended
    safe_head: int  # the newest block with enough confirmations, as last seen
    blocks: int = 0
    logs: int = 0
    rows_inserted: int = 0
    events_upserted: int = 0
    batches: int = 0
    reorgs: int = 0
    rows_deleted: int = 0
    retries: int = 0
    duration_s: float = 0.0
    read_s: float = 0.0
    write_s: float = 0.0
    batch_results: list[BatchResult] = field(default_factory=list, repr=False)

    @property
    def blocks_per_second(self) -> float:
        return self.blocks / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def logs_per_second(self) -> float:
        return self.logs / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def up_to_date(self) -> bool:
        return self.last_block >= self.safe_head


BatchCallback = Callable[[BatchResult, EtlReport], None]


def cursor_name(chain_id: int, contract_address: str) -> str:
    return f"{chain_id}:{contract_address.lower()}"


def backoff_delay(attempt: int, *, base_s: float, max_s: float, jitter: float) -> float:
    """Seconds to wait after failed try `attempt` (1-based): base·2^(attempt-1), capped, then scaled
    into [½, 1] of itself by `jitter` ∈ [0, 1) so that many clients do not retry in lockstep."""
    ceiling = min(max_s, base_s * 2 ** (attempt - 1))
    return ceiling * (0.5 + jitter / 2)


class TransactionChanges(Protocol):
    """Told after each commit what the ETL changed in `transactions` (the API workers' in-memory feature
    state: `scoring.online.FeedPublisher`)."""

    def added(self, transactions: list[dict[str, Any]]) -> None: ...

    def invalidate(self) -> None: ...


class ChainEtl:
    """The ETL over an engine and a reader; `run()` is one job run. Safe to re-run at any time."""

    def __init__(
        self,
        engine: Engine,
        reader: ChainReader,
        config: EtlConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        changes: TransactionChanges | None = None,
    ) -> None:
        self._engine = engine
        self._changes = changes
        self._reader = reader
        self._config = config
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    # ----------------------------------------------------------------------------------- retries
    def _retrying(self, what: str, call: Callable[[], T], report: EtlReport | None) -> T:
        cfg = self._config
        for attempt in range(1, cfg.retry_attempts + 1):
            try:
                return call()
            except (ProviderUnavailable, _ChainMoved) as exc:
                if attempt == cfg.retry_attempts:
                    if isinstance(exc, _ChainMoved):
                        raise ProviderFailed(
                            f"{what}: the chain changed under every one of {attempt} reads ({exc}); "
                            "is CHAIN_CONFIRMATIONS too low for this chain?"
                        ) from exc
                    raise ProviderFailed(f"{what} failed {attempt} times; last error: {exc}") from exc
                delay = backoff_delay(
                    attempt, base_s=cfg.retry_base_delay_s, max_s=cfg.retry_max_delay_s, jitter=self._jitter()
                )
                if report is not None:
                    report.retries += 1
                log.warning(
                    "chain etl retry",
                    extra={"what": what, "attempt": attempt, "delay_s": round(delay, 3), "error": str(exc)},
                )
                self._sleep(delay)
        raise AssertionError("unreachable: retry_attempts >= 1")

    # ----------------------------------------------------------------------------------- run
    def cursor_name(self) -> str:
        chain_id = self._retrying("eth_chainId", self._reader.chain_id, None)
        return cursor_name(chain_id, self._config.contract_address)

    def _open_cursor(self, name: str) -> repo.Cursor:
        with self._engine.begin() as conn:
            cursor = repo.ensure_cursor(conn, name, before_block=self._config.start_block)
            if not repo.checkpoints(conn, name):
                # The anchor "before the first block" matches any chain: a reorg reaching into the first
                # batch rewinds to it, until it is pruned.
                repo.add_checkpoint(
                    conn, name, repo.Checkpoint(cursor.last_block, None), keep=self._config.checkpoints_kept
                )
            return cursor

    def run(
        self,
        *,
        max_blocks: int | None = None,
        on_batch: BatchCallback | None = None,
        on_plan: Callable[[EtlReport], None] | None = None,
    ) -> EtlReport:
        """Load confirmed blocks after the cursor, at most `max_blocks` of them (None: up to the safe head).

        `on_plan` is called once the first safe head is known (report.safe_head, report.start_cursor);
        `on_batch` after every committed batch. An exception from either stops the run like a crash would.
        """
        if max_blocks is not None and max_blocks < 1:
            raise ValueError(f"max_blocks must be >= 1 or None, got {max_blocks}")
        started = self._clock()
        name = self.cursor_name()
        cursor = self._open_cursor(name)
        report = EtlReport(
            cursor_name=name, start_cursor=cursor.last_block, last_block=cursor.last_block, safe_head=-1
        )
        try:
            while True:
                head = self._retrying("eth_blockNumber", self._reader.head_block, report)
                report.safe_head = head - self._config.confirmations
                if on_plan is not None:
                    on_plan(report)
                    on_plan = None
                with self._engine.connect() as conn:
                    cursor = repo.get_cursor(conn, name) or cursor
                first = cursor.last_block + 1
                last = min(report.safe_head, first + self._config.batch_blocks - 1)
                if max_blocks is not None:
                    last = min(last, first + (max_blocks - report.blocks) - 1)
                if last < first:
                    # Nothing new to read, but a reorganisation may still have orphaned loaded blocks.
                    if cursor.last_block_hash is not None and not self._still_canonical(cursor, report):
                        self._rewind_after_reorg(name, cursor, report)
                        continue
                    report.last_block = cursor.last_block
                    break
                try:
                    batch = self._retrying(
                        f"blocks {first}..{last}", partial(self._load, cursor, first, last, report), report
                    )
                except _CursorOrphaned as orphaned:
                    self._rewind_after_reorg(name, orphaned.cursor, report)
                    continue
                report.batches += 1
                report.blocks += batch.blocks
                report.logs += batch.logs
                report.rows_inserted += batch.rows_inserted
                report.events_upserted += batch.events_upserted
                report.read_s += batch.read_s
                report.write_s += batch.write_s
                report.last_block = batch.to_block
                report.batch_results.append(batch)
                if on_batch is not None:
                    on_batch(batch, report)
        finally:
            report.duration_s = self._clock() - started
        log.info(
            "chain etl run finished",
            extra={
                "cursor": name,
                "blocks": report.blocks,
                "logs": report.logs,
                "rows_inserted": report.rows_inserted,
                "reorgs": report.reorgs,
                "retries": report.retries,
                "last_block": report.last_block,
                "safe_head": report.safe_head,
                "blocks_per_s": round(report.blocks_per_second, 1),
            },
        )
        return report

    def _still_canonical(self, cursor: repo.Cursor, report: EtlReport) -> bool:
        header = self._retrying(
            f"block {cursor.last_block}", lambda: self._reader.header(cursor.last_block), report
        )
        return header is not None and header.hash == cursor.last_block_hash

    def _load(self, cursor: repo.Cursor, first: int, last: int, report: EtlReport) -> BatchResult:
        """Read, check and commit blocks first..last (raises _ChainMoved / _CursorOrphaned)."""
        began = self._clock()
        raw_logs = self._retrying(
            f"eth_getLogs {first}..{last}",
            partial(self._reader.logs, self._config.contract_address, first, last),
            report,
        )
        positions = [position_of(raw) for raw in raw_logs]
        wanted = {last, *(p.block_number for p in positions)}
        if cursor.last_block_hash is not None:
            wanted.add(cursor.last_block)
        headers = self._retrying(
            f"headers of {len(wanted)} blocks in {min(wanted)}..{last}",
            partial(self._reader.headers, sorted(wanted)),
            report,
        )
        if cursor.last_block_hash is not None:
            current = headers.get(cursor.last_block)
            if current is None or current.hash != cursor.last_block_hash:
                raise _CursorOrphaned(cursor)
        if last not in headers:
            raise _ChainMoved(f"block {last} vanished after its logs were read")
        for position in positions:
            header = headers.get(position.block_number)
            if header is None or header.hash != position.block_hash:
                raise _ChainMoved(f"{position.describe()} is not in the canonical chain")
        read_done = self._clock()
        decoded = decode_logs(raw_logs)
        rows = [transaction_row(m, headers[m.position.block_number].timestamp) for m in decoded.movements]
        events = [event_row(e) for e in decoded.events]
        end: BlockHeader = headers[last]
        with self._engine.begin() as conn:
            repo.allow_long_statements(conn)
            new_rows = repo.insert_transactions(conn, rows)
            inserted = len(new_rows)
            upserted = repo.upsert_events(conn, events)
            repo.add_checkpoint(
                conn, cursor.name, repo.Checkpoint(last, end.hash), keep=self._config.checkpoints_kept
            )
            if not repo.move_cursor(
                conn, cursor.name, expected_block=cursor.last_block, block=last, block_hash=end.hash
            ):
                raise ConcurrentRun(
                    f"cursor {cursor.name} moved past block {cursor.last_block} while this run loaded "
                    f"{first}..{last}; another ETL run is active (this batch was rolled back)"
                )
        if self._changes is not None:
            self._changes.added(new_rows)
        log.info(
            "chain etl batch committed",
            extra={"from_block": first, "to_block": last, "logs": len(raw_logs), "rows_inserted": inserted},
        )
        done = self._clock()
        return BatchResult(
            first, last, len(raw_logs), inserted, upserted, read_done - began, done - read_done
        )

    # ----------------------------------------------------------------------------------- reorgs
    def _rewind_after_reorg(self, name: str, cursor: repo.Cursor, report: EtlReport) -> None:
        if report.reorgs >= MAX_REWINDS_PER_RUN:
            raise EtlError(
                f"the chain reorganised under the ETL {report.reorgs} times in one run; is WEB3_PROVIDER "
                "a load balancer over nodes that disagree? Stopped; re-run when the chain is stable."
            )
        with self._engine.connect() as conn:
            kept = repo.checkpoints(conn, name)
        ancestor: repo.Checkpoint | None = None
        for checkpoint in kept:
            if checkpoint.block >= cursor.last_block:
                continue  # the cursor's own block is the one found orphaned
            if checkpoint.block_hash is None:
                ancestor = checkpoint
                break
            header = self._retrying(
                f"block {checkpoint.block}", partial(self._reader.header, checkpoint.block), report
            )
            if header is not None and header.hash == checkpoint.block_hash:
                ancestor = checkpoint
                break
        if ancestor is None:
            oldest = kept[-1].block if kept else cursor.last_block
            raise ReorgTooDeep(
                f"the chain no longer holds block {cursor.last_block} {cursor.last_block_hash}, nor any of "
                f"the {len(kept)} kept checkpoints back to block {oldest}: a reorganisation deeper than "
                "the ETL can undo on its own. Check WEB3_PROVIDER points at the right chain, then run "
                "`ticketguard etl rewind --to-block N` with N a block both agree on "
                f"(N = {self._config.start_block - 1} reloads everything)."
            )
        with self._engine.begin() as conn:
            repo.allow_long_statements(conn)
            deleted = repo.delete_after(conn, name, ancestor.block)
            if not repo.move_cursor(
                conn,
                name,
                expected_block=cursor.last_block,
                block=ancestor.block,
                block_hash=ancestor.block_hash,
            ):
                raise ConcurrentRun(
                    f"cursor {name} moved while this run rewound it; another ETL run is active"
                )
        if deleted and self._changes is not None:
            self._changes.invalidate()
        report.reorgs += 1
        report.rows_deleted += deleted
        report.last_block = ancestor.block
        log.warning(
            "chain etl reorganisation: rewound",
            extra={
                "cursor": name,
                "orphaned_block": cursor.last_block,
                "rewound_to": ancestor.block,
                "rows_deleted": deleted,
            },
        )

    def rewind_to(self, block: int) -> int:
        """Move the cursor back to `block` by hand, deleting the chain rows above it; returns rows deleted."""
        name = self.cursor_name()
        if block < self._config.start_block - 1:
            raise ValueError(
                f"--to-block must be >= CHAIN_START_BLOCK - 1 = {self._config.start_block - 1}, got {block}"
            )
        cursor = self._open_cursor(name)
        if block > cursor.last_block:
            raise ValueError(f"--to-block {block} is ahead of the cursor at block {cursor.last_block}")
        block_hash: str | None = None
        if block >= self._config.start_block:
            header = self._retrying(f"block {block}", lambda: self._reader.header(block), None)
            if header is None:
                raise ValueError(f"block {block} is not on the chain at WEB3_PROVIDER")
            block_hash = header.hash
        with self._engine.begin() as conn:
            repo.allow_long_statements(conn)
            deleted = repo.delete_after(conn, name, block)
            repo.add_checkpoint(
                conn, name, repo.Checkpoint(block, block_hash), keep=self._config.checkpoints_kept
            )
            if not repo.move_cursor(
                conn, name, expected_block=cursor.last_block, block=block, block_hash=block_hash
            ):
                raise ConcurrentRun(f"cursor {name} moved while rewinding it; another ETL run is active")
        if deleted and self._changes is not None:
            self._changes.invalidate()
        log.warning(
            "chain etl rewound by hand", extra={"cursor": name, "to_block": block, "rows_deleted": deleted}
        )
        return deleted


def run_etl(
    settings: Settings,
    *,
    max_blocks: int | None = None,
    on_batch: BatchCallback | None = None,
    on_plan: Callable[[EtlReport], None] | None = None,
) -> EtlReport:
    """One ETL run with the engine and provider the settings name (the scheduler's entry point)."""
    from ticketguard.bootstrap import database_engine
    from ticketguard.chain.reader import reader_from_settings
    from ticketguard.scoring.online import FeedPublisher

    config = EtlConfig.from_settings(settings)
    reader = reader_from_settings(settings)
    engine = database_engine(settings)
    try:
        etl = ChainEtl(engine, reader, config, changes=FeedPublisher.from_settings(settings))
        return etl.run(max_blocks=max_blocks, on_batch=on_batch, on_plan=on_plan)
    finally:
        engine.dispose()
