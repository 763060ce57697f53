"""One failed contract check, as reports, logs and quarantine folders show it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SAMPLE_VALUES = 20
WINDOW = "(window)"  # the `batch` of failures that concern the whole window (leakage)


@dataclass(frozen=True)
class Failure:
    batch: str
    check: str
    column: str | None
    severity: str
    unexpected_count: int | None
    unexpected_percent: float | None
    sample_values: list[Any] = field(default_factory=list)
    detail: str = ""
    rows: list[int] = field(default_factory=list)  # 0-based row numbers of sample_values

    def line(self) -> str:
        where = f"column {self.column!r}" if self.column else "table"
        count = ("" if self.unexpected_count is None
                 else f": {self.unexpected_count} unexpected ({self.unexpected_percent or 0:.2f}%)")
        if self.rows:
            pairs = ", ".join(f"row {r}: {v!r}"
                              for r, v in zip(self.rows[:5], self.sample_values, strict=False))
            sample = f", e.g. {pairs}"
        else:
            sample = f", e.g. {self.sample_values[:5]}" if self.sample_values else ""
        detail = f" [{self.detail}]" if self.detail else ""
        return f"{self.batch}: {self.check} failed on {where}{count}{sample}{detail}"

    def as_dict(self) -> dict:
        return {**asdict(self), "line": self.line()}
