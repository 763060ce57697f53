import numpy as np
import pandas as pd
import pytest

from driftloop.splitting import split_frame


def split(df, **kw):
    """split_frame with the stage's usual choices unless a test says otherwise."""
    return split_frame(df, **({"method": "stratified", "time": None, "stratify": True} | kw))

def frame(n=2000, rate=0.1, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(n), "x": rng.normal(size=n),
        "t": pd.date_range("2026-01-01", periods=n, freq="min"),
        "y": (rng.random(n) < rate).astype(int),
    })


@pytest.mark.parametrize("method", ["stratified", "time"])
def test_same_seed_same_rows(method):
    df = frame()
    a = split(df, target="y", val_size=.15, test_size=.15, seed=3, method=method, time="t")
    b = split(df.sample(frac=1, random_state=1) if method == "time" else df, target="y",
                    val_size=.15, test_size=.15, seed=3, method=method, time="t")
    for name in ("train", "val", "test"):
        assert sorted(a[name]["id"]) == sorted(b[name]["id"])


def test_different_seed_different_rows():
    df = frame()
    a = split(df, target="y", val_size=.15, test_size=.15, seed=1)
    b = split(df, target="y", val_size=.15, test_size=.15, seed=2)
    assert set(a["test"]["id"]) != set(b["test"]["id"])


@pytest.mark.parametrize("method", ["stratified", "time"])
def test_partition_and_sizes(method):
    df = frame()
    parts = split(df, target="y", val_size=.2, test_size=.1, seed=0, method=method, time="t")
    ids = [set(p["id"]) for p in parts.values()]
    assert sum(len(s) for s in ids) == len(df) and len(set.union(*ids)) == len(df)
    assert len(parts["test"]) == pytest.approx(200, abs=2)
    assert len(parts["val"]) == pytest.approx(400, abs=2)


def test_stratified_keeps_the_positive_rate():
    df = frame(n=5000, rate=0.07)
    parts = split(df, target="y", val_size=.15, test_size=.15, seed=0)
    for p in parts.values():
        assert p["y"].mean() == pytest.approx(df["y"].mean(), abs=0.003)


def test_time_split_holds_out_the_newest_rows():
    df = frame()
    parts = split(df, target="y", val_size=.15, test_size=.15, seed=0, method="time",
                        time="t")
    assert parts["test"]["t"].min() > max(parts["train"]["t"].max(), parts["val"]["t"].max())
    assert parts["val"]["y"].mean() == pytest.approx(parts["train"]["y"].mean(), abs=0.01)


def test_bad_sizes_and_missing_time_column():
    with pytest.raises(ValueError, match="must be < 1"):
        split(frame(), target="y", val_size=.5, test_size=.5, seed=0)
    with pytest.raises(ValueError, match="time column 'when'"):
        split(frame(), target="y", val_size=.1, test_size=.1, seed=0, method="time",
                    time="when")


def test_a_regression_target_splits_without_strata():
    df = pd.DataFrame({"y": np.linspace(0, 1, 200), "t": range(200)})
    parts = split_frame(df, target="y", val_size=.2, test_size=.1, seed=0, method="time", time="t",
                        stratify=False)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [140, 40, 20]
    with pytest.raises(ValueError):  # 200 distinct values cannot be strata
        split_frame(df, target="y", val_size=.2, test_size=.1, seed=0, method="time", time="t",
                    stratify=True)
