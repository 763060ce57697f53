"""Small I/O helpers shared by the stages: atomic writes and tolerant table reads."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TABLE_SUFFIXES = (".parquet", ".csv")
PNG_DPI = 110  # figures for reports and MLflow


class DataFileError(ValueError):
    """A data file that cannot be read; the message says which file and what to do."""


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (setting it to read
    it back would race with threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through a uniquely named temp file in the target folder, then rename it over
    `path`: readers see the old file or the new one, never half of one. The file gets the
    mode a plain open() would give it (mkstemp's 0600 would hide reports from other users)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    return _atomic(path, lambda p: p.write_text(text))


def write_text(path: Path, text: str) -> Path:
    return _atomic(path, lambda p: p.write_text(text))


def write_parquet(path: Path, df: pd.DataFrame) -> Path:
    return _atomic(path, lambda p: df.to_parquet(p, index=False))


def write_csv(path: Path, df: pd.DataFrame) -> Path:
    return _atomic(path, lambda p: df.to_csv(p, index=False))


def write_png(path: Path, figure) -> Path:
    """A matplotlib figure as PNG (the temp name has no .png suffix, so the format is named)."""
    return _atomic(path, lambda p: figure.savefig(p, format="png", dpi=PNG_DPI))


def write_arrow(path: Path, table: pa.Table) -> Path:
    """An Arrow table as Parquet, with min/max statistics for every column but text: nothing
    here filters text columns by range, and their statistics are a quarter of the write
    (about 0.2 s per 1e6 rows, on every run for the validated window and the splits)."""
    text = {f.name for f in table.schema if pa.types.is_string(f.type)
            or pa.types.is_large_string(f.type)}
    stats = [n for n in table.column_names if n not in text]
    return _atomic(path, lambda p: pq.write_table(table, p, write_statistics=stats))


def write_file(path: Path, write: Callable[[Path], None]) -> Path:
    """Atomically, with any writer that takes a path (e.g. a report's `save_html`)."""
    return _atomic(path, write)


def replace_dir(path: Path, fill: Callable[[Path], None]) -> Path:
    """Build a folder under a temp name, then swap it in, so readers never see half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        fill(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700, as mkdir would have made it
        if path.exists():
            old = path.with_name(f".{path.name}.{uuid.uuid4().hex}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


@contextmanager
def _reading(path: Path):
    """Turn any read failure into a DataFileError that names the file and the fix."""
    try:
        yield
    except DataFileError:
        raise
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise DataFileError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset "
            f"{exc.start}); re-export the file as UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{path}: the file is empty (no header, no rows); re-export it") from None
    except Exception as exc:  # pyarrow / parser errors: a corrupt or truncated file
        raise DataFileError(
            f"{path}: cannot be read as {path.suffix[1:]} ({type(exc).__name__}: {exc}); "
            "the file is corrupt or truncated: re-deliver it"
        ) from None


def _check_suffix(path: Path) -> None:
    if path.suffix not in TABLE_SUFFIXES:
        raise DataFileError(f"{path}: unsupported file type {path.suffix!r}; use .parquet or .csv")


def _check_header(path: Path, names: list[str]) -> None:
    """Column names must be unique: pandas would rename CSV duplicates (`x.1`) and Arrow
    refuses them with a message about field references."""
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise DataFileError(f"{path}: duplicate column name(s) {dups}; give each column one "
                            "name and re-export the file")


def _header(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        return pq.read_schema(path).names
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f), [])


def read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a parquet or CSV batch file; any failure names the file and the fix."""
    path = Path(path)
    _check_suffix(path)
    with _reading(path):
        _check_header(path, _header(path))
        if path.suffix == ".parquet":
            return pd.read_parquet(path, columns=columns)
        return pd.read_csv(path, usecols=columns, encoding="utf-8")


def read_arrow(path: Path, dictionary: Iterable[str] = ()) -> pa.Table:
    """Read a parquet batch as an Arrow table, with the text columns named in `dictionary`
    dictionary-encoded (they become pandas categoricals: no Python string per row). Same
    errors as `read_table`."""
    path = Path(path)
    _check_suffix(path)
    with _reading(path):
        schema = pq.read_schema(path)
        _check_header(path, schema.names)
        text = [c for c in dictionary if c in schema.names
                and (pa.types.is_string(t := schema.field(c).type) or pa.types.is_large_string(t))]
        return pq.read_table(path, read_dictionary=text)


def parquet_layout(path: Path) -> tuple[pa.Schema, int]:
    """A parquet file's Arrow schema and row count, from its footer alone. Same errors as
    `read_table`."""
    path = Path(path)
    _check_suffix(path)
    with _reading(path):
        f = pq.ParquetFile(path)
        _check_header(path, f.schema_arrow.names)
        return f.schema_arrow, f.metadata.num_rows


def window_file(batch: str) -> str:
    """The name a batch has in the validated window (a folder of Parquet files, one per batch):
    its own name for a parquet batch, `<name>.parquet` for a CSV one."""
    return batch if batch.endswith(".parquet") else f"{batch}.parquet"


def read_window(folder: Path) -> pa.Table:
    """The validated window as one table: its batch files in name order (the batches' order),
    column types promoted where they differ (int and float, all-null columns), no pandas
    metadata. Raises DataFileError when the folder holds none."""
    folder = Path(folder)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        raise DataFileError(f"{folder}: no validated batch files; run the validate stage "
                            "(`dvc repro validate`) first")
    tables = [read_arrow(f).replace_schema_metadata(None) for f in files]
    return pa.concat_tables(tables, promote_options="permissive")


def list_batches(folder: Path) -> list[Path]:
    """Batch files in a folder, in name order (names sort by time: batch_<date>.parquet)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in TABLE_SUFFIXES and p.is_file())


def newest_batch(*folders: Path) -> Path:
    """The newest batch file by name across `folders` (names sort by time)."""
    files = [f for folder in folders for f in list_batches(folder)]
    if not files:
        raise FileNotFoundError(f"no batch files in {' or '.join(map(str, folders))}: land one "
                                "(e.g. `driftloop simulate`)")
    return max(files, key=lambda p: p.name)


def find_batch(batch: str | None, folders: list[Path]) -> Path | None:
    """A batch given by name is looked up in `folders` in order; a path is taken as is;
    None stays None (the caller then takes the newest)."""
    if not batch:
        return None
    p = Path(batch)
    if p.is_absolute() or p.exists():
        return p.resolve()
    for folder in folders:
        if (folder / p.name).exists():
            return folder / p.name
    raise FileNotFoundError(f"batch {batch!r} is in none of {', '.join(map(str, folders))}; "
                            "pass a file path or a landed batch name")
