"""The split stage takes its rows in Arrow, never through pandas: its files must hold exactly
the frames `splitting.split_frame` (what replay and the model tests use) gives for the same
window, with missing values, text, integers and times, for both split methods."""

from __future__ import annotations

import shutil
from datetime import date

import pandas as pd
import pyarrow as pa
import pytest
import yaml

from driftloop.config import load_params
from driftloop.io import write_arrow
from driftloop.simulate import simulate_week
from driftloop.splitting import split_frame
from pipelines import split
from tests.helpers import ROOT


@pytest.mark.parametrize("method", ["time", "stratified"])
def test_the_split_files_hold_the_rows_split_frame_draws(tmp_path, method):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    body = yaml.safe_load((tmp_path / "params.yaml").read_text())
    body["split"]["method"] = method
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(body))
    params = load_params(tmp_path / "params.yaml")
    weeks = [simulate_week(w, rows=700, seed=5, start=date(2026, 1, 5), drift=0.5)
             for w in range(3)]
    weeks[1]["age"] = weeks[1]["age"].round().astype("Int64")  # integers in one batch only
    window = pd.concat(weeks, ignore_index=True)
    assert window.isna().any().any() and any(t == "object" for t in window.dtypes.astype(str))
    out = params.path("validated")  # a file per batch, the batches' order by name
    out.mkdir(parents=True)
    for w, frame in enumerate(weeks):
        write_arrow(out / f"batch_{w}.parquet", pa.Table.from_pandas(frame, preserve_index=False))

    summary = split.run(params)
    s, d = params.split, params.data
    expected = split_frame(window.astype({"age": float}), target=d.target, val_size=s.val_size,
                           test_size=s.test_size, seed=s.seed, method=method, time=d.time,
                           stratify=True)
    for name, frame in expected.items():
        got = pd.read_parquet(params.path("splits") / f"{name}.parquet")
        pd.testing.assert_frame_equal(got, frame, check_exact=True)
        assert summary[name]["rows"] == len(frame)
        assert summary[name]["positive_rate"] == round(float(frame[d.target].mean()), 5)
        assert summary[name]["last"] == str(frame[d.time].max())
    assert sum(len(f) for f in expected.values()) == len(window)
