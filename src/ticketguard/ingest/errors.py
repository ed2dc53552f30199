"""What went wrong with an import file, kept as a frame so a million bad rows stay cheap to hold."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

MAX_SHOWN = 50
# The file's own row numbering: the header is row 1, so the first data row is row 2.
FIRST_DATA_ROW = 2
PROBLEM_COLUMNS = ("position", "column", "message")


@dataclass(frozen=True)
class Problem:
    """One problem: a row and column of the file, or the whole file (row and column None)."""

    message: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


def empty_problems() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "position": pd.Series([], dtype="int64"),
            "column": pd.Series([], dtype="str"),
            "message": pd.Series([], dtype="str"),
        }
    )


def problems_to_list(frame: pd.DataFrame, limit: int | None = MAX_SHOWN) -> list[Problem]:
    """Problems in file order (row, then the order the columns were checked), at most `limit` of them."""
    ordered = frame.sort_values("position", kind="stable")
    if limit is not None:
        ordered = ordered.head(limit)
    return [
        Problem(row=int(pos) + FIRST_DATA_ROW, column=str(col), message=str(msg))
        for pos, col, msg in zip(ordered["position"], ordered["column"], ordered["message"], strict=True)
    ]


class ImportValidationError(ValueError):
    """The file cannot be imported as it is. Lists every problem found (the first `MAX_SHOWN` in `str`).

    `problems` holds file-level problems and the first row problems; `total` counts them all;
    `row_problems` is the full frame (position = 0-based data row, column, message) when rows were checked.
    """

    def __init__(
        self,
        source: str,
        problems: list[Problem],
        *,
        total: int | None = None,
        row_problems: pd.DataFrame | None = None,
    ) -> None:
        self.source = source
        self.problems = problems
        self.total = total if total is not None else len(problems)
        self.row_problems = row_problems if row_problems is not None else empty_problems()
        super().__init__(self.render())

    @classmethod
    def for_rows(cls, source: str, row_problems: pd.DataFrame) -> ImportValidationError:
        return cls(source, problems_to_list(row_problems), total=len(row_problems), row_problems=row_problems)

    def render(self, limit: int = MAX_SHOWN) -> str:
        noun = "problem" if self.total == 1 else "problems"
        lines = [f"{self.source}: {self.total} {noun}, nothing imported"]
        lines += [f"  {problem}" for problem in self.problems[:limit]]
        hidden = self.total - min(limit, len(self.problems))
        if hidden > 0:
            lines.append(f"  … and {hidden} more")
        return "\n".join(lines)
