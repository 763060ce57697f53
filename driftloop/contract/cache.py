"""Verdicts of batches already checked, so that a run validates only what is new.

A batch that passed is kept under a key made of its bytes (sha256) and suffix, and of the
contract: the suite as loaded, the `validate` knobs that decide a batch's verdict, the versions
of the libraries and the project code that compute it. Its failures (warnings) are kept too,
so a reused verdict reports exactly what a fresh check would. Failed batches are never kept:
they go to quarantine.

The suite's event-time bounds move with the clock (`time_parameters`), so an entry also keeps
the bounds it was checked against and the range of each bounded column; it is reused only
when no value of the column lies between those bounds and today's (otherwise some row may
have changed sides, e.g. grown older than `validate.max_age_days`).

Beside a kept verdict lies the batch's leakage sample (`<key>.sample.parquet`): its rows in
the order the window checks draw them, so a known batch adds its share to the window's sample
without being read again.

The cache is a speed-up, never a source of truth: an entry that cannot be read, or that does
not match its key, is logged and ignored, and the batch is checked (or its sample drawn) again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, fields
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from driftloop.config import ValidateParams
from driftloop.contract.failure import Failure
from driftloop.io import write_arrow, write_json

log = logging.getLogger(__name__)

FORMAT = 1  # bump when an entry's layout or meaning changes: older entries are then unused
# validate knobs that never change a batch's verdict: how many processes check, whether the
# cache is on, and the leakage guard (a window-level check, run on every run)
NOT_VERDICT_KNOBS = {"workers", "cache", "leakage"}
LIBRARIES = ("great_expectations", "pandas", "pyarrow", "numpy")
# project code that reads a batch and decides its verdict (the stage adds its own module)
ENGINE = [Path(__file__).parent / n for n in ("check.py", "suite.py", "failure.py", "cache.py")] \
    + [Path(__file__).parents[1] / "io.py"]
UNKNOWN = "unknown"  # a bounded column whose values cannot be compared (e.g. unparsed text)
SAMPLE_SEED = b"driftloop.leakage_seed"  # a kept sample's metadata: the seed that drew it


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def contract_key(suite: dict, vp: ValidateParams, code: list[Path] = ()) -> str:
    """What a verdict depends on besides the batch's bytes and the clock."""
    body = {"format": FORMAT, "suite": suite,
            "knobs": vp.model_dump(mode="json", exclude=NOT_VERDICT_KNOBS),
            "libraries": {n: _version(n) for n in LIBRARIES},
            "code": {p.name: _sha256(Path(p).read_bytes()) for p in [*ENGINE, *code]}}
    return _sha256(json.dumps(body, sort_keys=True, default=str).encode())


def bounded_columns(suite: dict) -> list[tuple[str, str]]:
    """(column, parameter) of each bound a suite takes from `time_parameters`."""
    return [(e["kwargs"]["column"], v["$PARAMETER"]) for e in suite["expectations"]
            if "column" in e["kwargs"]
            for k in ("min_value", "max_value")
            if isinstance(v := e["kwargs"].get(k), dict) and "$PARAMETER" in v]


def _scalar(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return float(v)


def column_ranges(frame: pd.DataFrame, suite: dict) -> dict[str, Any]:
    """[min, max] of each bounded column of a prepared frame (as the checks saw it): None when
    the column is missing or all null (no row is compared), UNKNOWN when its values are not
    numbers or times."""
    out: dict[str, Any] = {}
    for col in dict.fromkeys(c for c, _ in bounded_columns(suite)):
        s = frame[col] if col in frame else None
        if s is None or not s.notna().any():
            out[col] = None
        elif pd.api.types.is_datetime64_any_dtype(s) or (
                pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)):
            out[col] = [_scalar(s.min()), _scalar(s.max())]
        else:
            out[col] = UNKNOWN
    return out


def _like(value: Any, bound: Any) -> Any:
    return pd.Timestamp(value) if isinstance(bound, pd.Timestamp) else value


def bounds_hold(ranges: dict[str, Any], then: dict[str, Any], now: dict[str, Any],
                suite: dict) -> bool:
    """True when every bounded check fails on the same rows with today's bounds (`now`) as with
    the ones a verdict was made with (`then`): no value lies between the two bounds (pure)."""
    for col, name in bounded_columns(suite):
        old, new = then.get(name), now.get(name)
        if col not in ranges or ranges[col] == UNKNOWN:
            return False
        if ranges[col] is None or (old is None and new is None):
            continue
        if old is None or new is None:
            return False
        try:
            old = _like(old, new)
            if old == new:
                continue
            lo, hi = (_like(v, new) for v in ranges[col])
            a, b = min(old, new), max(old, new)
            if not (hi < a or lo > b):
                return False
        except (TypeError, ValueError):
            return False
    return True


@dataclass(frozen=True)
class Verdict:
    """A batch's checks: its failures (none blocking, or it is not kept), and the bounded
    columns' ranges with the bounds they were checked against."""
    failures: list[Failure]
    ranges: dict[str, Any]
    bounds: dict[str, Any]


class VerdictCache:
    """Entries `<folder>/<contract key>/<file sha256><suffix>.json`, written atomically."""

    def __init__(self, folder: Path, contract: str):
        self.folder = Path(folder) / contract[:24]
        self.contract = contract
        self.ignored: list[str] = []  # entries found damaged this run

    def key(self, path: Path) -> str:
        return f"{file_digest(path)}{path.suffix}"

    def entry(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> Verdict | None:
        path = self.entry(key)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return self._ignore(path, f"cannot be read ({type(exc).__name__}: {exc})")
        try:
            if (raw["format"], raw["contract"], raw["key"]) != (FORMAT, self.contract, key):
                return self._ignore(path, "does not match its key")
            names = {f.name for f in fields(Failure)}
            failures = [Failure(**{k: v for k, v in f.items() if k in names})
                        for f in raw["failures"]]
            if not isinstance(raw["ranges"], dict) or not isinstance(raw["bounds"], dict):
                raise TypeError("ranges and bounds must be objects")
            return Verdict(failures, raw["ranges"], raw["bounds"])
        except (KeyError, TypeError, AttributeError) as exc:
            return self._ignore(path, f"is incomplete ({type(exc).__name__}: {exc})")

    def _ignore(self, path: Path, why: str, redo: str = "the batch is checked again") -> None:
        log.warning("%s: validate cache entry %s; ignored, %s (delete the file to silence this)",
                    path, why, redo)
        self.ignored.append(str(path))
        return None

    def sample_path(self, key: str) -> Path:
        return self.folder / f"{key}.sample.parquet"

    def sample(self, key: str, seed: int, rows: int) -> pa.Table | None:
        """The batch's kept leakage sample when it was drawn with `seed` and holds at least
        `rows` rows; None otherwise (the caller draws it from the batch)."""
        path = self.sample_path(key)
        try:
            table = pq.read_table(path)
        except FileNotFoundError:
            return None
        except Exception as exc:  # pyarrow's errors for a damaged file
            return self._ignore(path, f"cannot be read ({type(exc).__name__}: {exc})",
                                "the sample is drawn from the batch again")
        if (table.schema.metadata or {}).get(SAMPLE_SEED) != str(seed).encode() \
                or table.num_rows < rows:
            return None  # drawn for other leakage knobs: drawn again, and kept anew
        return table

    def put_sample(self, key: str, table: pa.Table, seed: int) -> None:
        write_arrow(self.sample_path(key), table.replace_schema_metadata({SAMPLE_SEED: str(seed)}))

    def put(self, key: str, batch: str, verdict: Verdict) -> None:
        write_json(self.entry(key), {
            "format": FORMAT, "contract": self.contract, "key": key, "batch": batch,
            "failures": [asdict(f) for f in verdict.failures], "ranges": verdict.ranges,
            "bounds": {k: _scalar(v) if v is not None else None for k, v in verdict.bounds.items()},
        })


def reuse(cached: Verdict | None, batch: str, parameters: dict, suite: dict) -> list[Failure] | None:
    """A kept verdict's failures, named after `batch`, when it still holds today."""
    if cached is None or not bounds_hold(cached.ranges, cached.bounds, parameters, suite):
        return None
    return [Failure(**{**asdict(f), "batch": batch}) for f in cached.failures]
