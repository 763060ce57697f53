"""Fuzzed batches: hypothesis breaks a good demo batch (wrong and mixed types, zone-aware and
naive times, non-UTF-8 bytes, odd Unicode and duplicate column names, empty and huge strings,
NaN and inf, zero rows, extra and missing columns) and writes it as CSV or Parquet. The real
`driftloop validate`, `contract init`, `score`, `drift` and `backtest` run on it in process
(real Great Expectations, a real champion in a local MLflow store, real Evidently). Whatever
the file: no traceback, exit 0 when the batch is fine, 1 when it breaks the contract or does
not fit the model, 2 when it cannot be read, and a failure names the file.

The examples tried per command are printed at the end of the module (`-s` not needed)."""

from __future__ import annotations

import csv
import io
import shutil
import traceback
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from driftloop.config import load_params
from driftloop.simulate import simulate_week
from tests.helpers import ROOT

COUNTS: Counter[str] = Counter()
FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))
START = date(2026, 1, 5)
ROWS = 120  # above the demo contract's 100-row floor and drift.min_rows below
ID, TIME, TARGET = "application_id", "event_time", "default"
ODD_NAMES = ["", " ", "age ", "Age", "a,b", 'q"uote', "new\nline", "é", "\u200b", "🙂",
             "\u202eevil", "nul\x00", "x" * 300]
HUGE = "x" * 100_000


def good(rows: int = ROWS, week: int = 1) -> pd.DataFrame:
    return simulate_week(week, rows=rows, seed=7, start=START, drift=False)


COLUMNS = list(good(3).columns)
NUMERIC = [c for c in COLUMNS if pd.api.types.is_numeric_dtype(good(3)[c]) and c != TARGET]
TEXT = [c for c in COLUMNS if good(3)[c].dtype == object and c != ID]


class Batch:
    """A broken batch: the frame as a list of (name, values) (names may repeat), the
    format, and what was done to it."""

    def __init__(self, columns: list[tuple[str, pd.Series]], suffix: str):
        self.columns, self.suffix = columns, suffix
        self.done: list[str] = []
        self.bad_bytes = False

    def write(self, path: Path) -> Path:
        path = path.with_suffix(self.suffix)
        names = [n for n, _ in self.columns]
        if self.suffix == ".parquet":
            arrays = []
            for _, s in self.columns:
                try:
                    arrays.append(pa.array(s, from_pandas=True))
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                    # what a producer of mixed columns writes: text
                    arrays.append(pa.array(s.map(lambda v: None if v is None else str(v)),
                                           type=pa.string()))
            pq.write_table(pa.Table.from_arrays(arrays, names=names), path)
        else:
            out = io.StringIO()
            w = csv.writer(out, lineterminator="\n")
            w.writerow(names)
            n = len(self.columns[0][1]) if self.columns else 0
            for i in range(n):
                w.writerow(["" if _missing(s.iloc[i]) else _text(s.iloc[i])
                            for _, s in self.columns])
            data = out.getvalue().encode("utf-8", "surrogatepass")
            if self.bad_bytes:  # a latin-1 byte in the header: not UTF-8
                data = data.replace(b",", b",\xe9", 1)
            path.write_bytes(data)
        return path

    def __repr__(self) -> str:
        rows = len(self.columns[0][1]) if self.columns else 0
        return f"Batch({self.suffix}, {rows} rows, {self.done})"

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.columns]


def _missing(v) -> bool:
    return v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v))


def _text(v) -> str:
    return v.isoformat() if isinstance(v, pd.Timestamp) else str(v)


values = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70),
    st.text(max_size=12), st.just(""), st.just(HUGE), st.booleans(),
    st.datetimes(min_value=pd.Timestamp("1900-01-01").to_pydatetime(),
                 max_value=pd.Timestamp("2200-01-01").to_pydatetime()).map(pd.Timestamp))
zones = st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"])
odd_name = st.one_of(st.sampled_from(ODD_NAMES),
                     st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=8))


ALL_KINDS = ("drop", "extra", "rename", "duplicate", "values", "values", "column type",
             "time zone", "time text", "nan inf")
VALUE_KINDS = ("values", "column type", "time zone", "time text", "nan inf")  # columns all there


@st.composite
def mutation(draw, kinds=ALL_KINDS):
    kind = draw(st.sampled_from(kinds))
    col = draw(st.sampled_from(COLUMNS))
    return kind, col, draw(odd_name), draw(st.lists(values, min_size=1, max_size=4)), \
        draw(zones), draw(st.integers(0, 2**31))


def apply(batch: Batch, kind: str, col: str, name: str, vals: list, zone: str, seed: int) -> None:
    cols = batch.columns
    at = [i for i, (n, _) in enumerate(cols) if n == col]
    if not at:
        return
    i = at[0]
    n, s = cols[i]
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(s), size=min(len(vals), len(s)), replace=False) if len(s) else []
    if kind == "drop":
        del cols[i]
    elif kind == "extra":
        cols.append((name, pd.Series([vals[j % len(vals)] for j in range(len(s))], dtype=object)))
    elif kind == "rename":
        cols[i] = (name, s)
    elif kind == "duplicate":
        cols.append((col, s.copy()))
    elif kind == "values":
        s = s.astype(object).copy()
        for r, v in zip(rows, vals, strict=False):
            s.iloc[r] = v
        cols[i] = (n, s)
    elif kind == "column type":  # the whole column as text, or numbers where text was
        cols[i] = (n, s.astype(str) if col in NUMERIC or col == TIME
                   else pd.Series(rng.integers(0, 9, len(s)), index=s.index))
    elif kind == "nan inf":
        if col in NUMERIC:
            s = s.astype("float64").copy()
            s.iloc[rows] = rng.choice([np.nan, np.inf, -np.inf], size=len(rows))
            cols[i] = (n, s)
    elif kind in ("time zone", "time text"):
        j = [k for k, (m, _) in enumerate(cols) if m == TIME]
        if j:
            t = pd.to_datetime(cols[j[0]][1], utc=True, format="mixed").dt.tz_convert(zone)
            cols[j[0]] = (TIME, t if kind == "time zone" else t.map(pd.Timestamp.isoformat))
            batch.done.append(kind)
            return
    batch.done.append(f"{kind} {col!r}")


MOSTLY_FULL = st.sampled_from([ROWS, ROWS, ROWS, 3, 0])


@st.composite
def broken(draw, rows=MOSTLY_FULL, kinds=ALL_KINDS):
    n = draw(rows)
    df = good(n)
    batch = Batch([(c, df[c]) for c in df.columns], draw(st.sampled_from([".csv", ".parquet"])))
    if n < 100:
        batch.done.append(f"{n} rows")
    for m in draw(st.lists(mutation(kinds), max_size=3)):
        apply(batch, *m)
    if batch.suffix == ".csv" and draw(st.integers(0, 7)) == 0:
        batch.bad_bytes = True
        batch.done.append("non-UTF-8 byte")
    return batch


BENIGN = {"time zone", "time text"}  # the same instants, written another way


def fine(batch: Batch) -> bool:
    return all(d in BENIGN for d in batch.done)


# ------------------------------------------------------------------ the project and its champion
@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project with the demo contract and a real @champion (XGBoost only, 20 trees,
    trained by the real train stage, registered in a local MLflow store)."""
    import mlflow
    from mlflow import MlflowClient

    from pipelines.train import run as train

    root = tmp_path_factory.mktemp("fuzz")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["project"]["name"] = "fuzz"
    raw["train"]["candidates"] = ["xgboost"]
    raw["train"]["xgboost"].update(n_estimators=20, early_stopping_rounds=5, n_jobs=1)
    raw["drift"].update(min_rows=100, noise_rounds=5)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    shutil.copytree(ROOT / "expectations", root / "expectations")
    params = load_params(root / "params.yaml")
    splits = params.path("splits")
    splits.mkdir(parents=True)
    simulate_week(0, rows=600, seed=7, start=START, drift=False).to_parquet(splits / "train.parquet")
    good(300, week=2).to_parquet(splits / "val.parquet")
    version = mlflow.register_model(train(params)["model_uri"], "fuzz").version
    MlflowClient().set_registered_model_alias("fuzz", "champion", version)
    (root / "in").mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    yield
    line = "fuzz examples tried: " + ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items()))
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter and capture:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + line)
    else:
        print(line)


def invoke(project: Path, command: str, args: list[str]):
    from driftloop.cli import app

    COUNTS[command] += 1
    own = [] if command == "contract init" else ["--params", str(project / "params.yaml")]
    r = CliRunner().invoke(app, [*args, *own])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        trace = "".join(traceback.format_exception(r.exception))
        raise AssertionError(f"{command} raised {type(r.exception).__name__}:\n{trace[-3000:]}")
    assert "Traceback" not in r.output, r.output[-3000:]
    assert r.exit_code in (0, 1, 2), r.output[-3000:]
    return r


def written(project: Path, batch: Batch, command: str) -> Path:
    return batch.write(project / "in" / f"batch_{command.replace(' ', '_')}_{COUNTS[command]}")


def named(r, path: Path) -> None:
    if r.exit_code:
        assert path.name in r.output, f"the message does not name {path.name}:\n{r.output[-3000:]}"


# ------------------------------------------------------------------ the commands
@settings(FUZZ, max_examples=40)
@given(batch=broken())
def test_validate(project, batch):
    path = written(project, batch, "validate")
    r = invoke(project, "validate", ["validate", str(path)])
    named(r, path)
    if fine(batch):
        assert r.exit_code == 0, (batch.done, r.output[-3000:])
    elif any(d.split(" ")[0] in ("drop", "extra", "rename", "duplicate") for d in batch.done) \
            or batch.bad_bytes or any(d.endswith(" rows") for d in batch.done):
        assert r.exit_code != 0, (batch.done, r.output[-3000:])


@settings(FUZZ, max_examples=60)
@given(batch=broken())
def test_contract_init(project, batch):
    path = written(project, batch, "contract init")
    out = path.with_suffix(".json")
    r = invoke(project, "contract init", ["contract", "init", str(path), "--target", TARGET,
                                          "--id", ID, "--time", TIME, "--out", str(out)])
    named(r, path)
    lost = {TARGET, ID, TIME} - set(batch.names)
    if not lost and not batch.bad_bytes and len(set(batch.names)) == len(batch.names):
        assert r.exit_code == 0 and out.exists(), (batch.done, r.output[-3000:])


@settings(FUZZ, max_examples=50)
@given(batch=broken())
def test_score(project, batch):
    path = written(project, batch, "score")
    r = invoke(project, "score", ["score", str(path)])
    named(r, path)
    if fine(batch):
        assert r.exit_code == 0, (batch.done, r.output[-3000:])
        preds = pd.read_parquet(project / "data/predictions" / f"{path.stem}.parquet")
        assert len(preds) == len(batch.columns[0][1]) and preds[TIME].dt.tz is None


@settings(FUZZ, max_examples=40)
@given(batch=st.one_of(broken(rows=st.sampled_from([3, 0])),
                       broken(rows=st.just(ROWS), kinds=VALUE_KINDS)))
def test_drift(project, batch):
    path = written(project, batch, "drift")
    r = invoke(project, "drift", ["drift", str(path)])
    named(r, path)
    if fine(batch):
        assert r.exit_code == 0, (batch.done, r.output[-3000:])


@settings(FUZZ, max_examples=25)
@given(reference=broken(rows=st.just(ROWS), kinds=VALUE_KINDS),
       batch=st.one_of(broken(rows=st.sampled_from([3, 0])),
                       broken(rows=st.just(ROWS), kinds=VALUE_KINDS)))
def test_backtest(project, reference, batch):
    folder = project / "in" / f"backtest_{COUNTS['backtest']}"
    folder.mkdir()
    ref = reference.write(project / "in" / f"reference_{COUNTS['backtest']}")
    path = batch.write(folder / "batch_2026-01-12")
    r = invoke(project, "backtest", ["backtest", "--reference", str(ref), "--batches",
                                     str(folder), "--target", TARGET, "--id", ID, "--time", TIME])
    if r.exit_code:
        assert ref.name in r.output or path.name in r.output, r.output[-3000:]
    if fine(reference) and fine(batch):
        assert r.exit_code == 0, (reference.done, batch.done, r.output[-3000:])
