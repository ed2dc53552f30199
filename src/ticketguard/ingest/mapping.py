"""Column mapping: a platform's column names onto ours (`--map their=ours`, `--mapping file.yaml`)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ticketguard.ingest.columns import BY_NAME, OPTIONAL, REQUIRED
from ticketguard.ingest.errors import ImportValidationError, Problem

ACCEPTED_HINT = f"accepted: required {', '.join(REQUIRED)}; optional {', '.join(OPTIONAL)}"


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_map_options(items: Sequence[str]) -> dict[str, str]:
    """`["amount=price_paid"]` → `{"amount": "price_paid"}`; malformed items raise, all listed."""
    mapping: dict[str, str] = {}
    problems: list[Problem] = []
    for item in items:
        their, sep, ours = item.partition("=")
        their, ours = their.strip(), ours.strip()
        if not sep or not their or not ours:
            problems.append(
                Problem(f"--map {item!r}: must be THEIR_COLUMN=OUR_COLUMN, e.g. amount=price_paid")
            )
            continue
        if their in mapping and mapping[their] != ours:
            problems.append(Problem(f"--map {item!r}: {their!r} is already mapped to {mapping[their]!r}"))
            continue
        mapping[their] = ours
    if problems:
        raise ImportValidationError("--map", problems)
    return mapping


def load_mapping_file(path: Path) -> dict[str, str]:
    """A YAML file holding one mapping of their column name to ours, e.g. `amount: price_paid`."""
    label = f"mapping file {path}"
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ImportValidationError(label, [Problem("file not found")]) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ImportValidationError(label, [Problem(f"cannot be read as YAML: {exc}")]) from None
    if not isinstance(loaded, dict):
        raise ImportValidationError(
            label, [Problem("must be a YAML mapping of their column to ours, e.g. `amount: price_paid`")]
        )
    problems = [
        Problem(f"entry {their!r}: {ours!r}: both sides must be column names (text)")
        for their, ours in loaded.items()
        if not isinstance(their, str) or not isinstance(ours, str) or not their.strip() or not ours.strip()
    ]
    if problems:
        raise ImportValidationError(label, problems)
    return {str(their).strip(): str(ours).strip() for their, ours in loaded.items()}


@dataclass(frozen=True)
class ColumnPlan:
    """Which file column fills which of our columns, how to name it in messages, and what is left unused."""

    rename: dict[str, str]  # file column → our column
    ignored: list[str] = field(default_factory=list)

    @property
    def used(self) -> list[str]:
        return list(self.rename)

    def display(self, ours: str) -> str:
        for theirs, target in self.rename.items():
            if target == ours:
                return repr(theirs) if theirs == ours else f"{theirs!r} (mapped to {ours})"
        return repr(ours)


def plan_columns(file_columns: Sequence[str], mapping: Mapping[str, str] | None, source: str) -> ColumnPlan:
    """Resolve the mapping against the file's header; every problem is reported at once."""
    mapping = dict(mapping or {})
    problems: list[Problem] = []
    present = set(file_columns)
    listing = ", ".join(repr(c) for c in file_columns)
    for theirs, ours in mapping.items():
        if theirs not in present:
            problems.append(
                Problem(
                    f"mapping {theirs}={ours}: the file has no column {theirs!r}"
                    f"{_suggest(theirs, file_columns)}; its columns are {listing}"
                )
            )
        if ours not in BY_NAME:
            problems.append(
                Problem(
                    f"mapping {theirs}={ours}: {ours!r} is not a column ticketguard imports"
                    f"{_suggest(ours, BY_NAME)}; {ACCEPTED_HINT}"
                )
            )
    rename: dict[str, str] = {}
    for column in file_columns:
        if column in mapping:
            if mapping[column] in BY_NAME:
                rename[column] = mapping[column]
        elif column in BY_NAME:
            rename[column] = column
    fillers: dict[str, list[str]] = {}
    for theirs, ours in rename.items():
        fillers.setdefault(ours, []).append(theirs)
    for ours, theirs_list in fillers.items():
        if len(theirs_list) > 1:
            names = " and ".join(repr(t) for t in theirs_list)
            problems.append(
                Problem(
                    f"columns {names} would both fill {ours!r}; map only one of them "
                    f"(or map the other to a different column)"
                )
            )
    missing = [name for name in REQUIRED if name not in fillers]
    if missing:
        unused = [c for c in file_columns if c not in rename]
        hints = ", ".join(f"{m!r}{_suggest(m, unused)}" for m in missing)
        problems.append(
            Problem(
                f"missing required column(s) {hints}; the file has {listing}; "
                f"name them so or map one with --map THEIR_COLUMN={missing[0]}; {ACCEPTED_HINT}"
            )
        )
    if problems:
        raise ImportValidationError(source, problems)
    ignored = [c for c in file_columns if c not in rename]
    return ColumnPlan(rename=rename, ignored=ignored)


def describe_ignored(plan: ColumnPlan) -> list[str]:
    """One note per unused file column, with the likely intended name when there is one."""
    taken = set(plan.rename.values())
    free = [name for name in BY_NAME if name not in taken]
    return [f"{column!r}{_suggest(column, free)}" for column in plan.ignored]
