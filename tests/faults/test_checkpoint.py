"""MLP checkpoints under faults: they load with weights_only=True (no code runs on load), are
written under unique temp names, and a truncated, foreign or half-written one is a logged
restart from scratch, never a traceback."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from driftloop.learn.models import train_mlp
from tests.helpers import training_frames

LOGGER = "driftloop.learn.models"


@pytest.fixture(scope="module")
def setup():
    return training_frames(600, 200, seed=3)


def mlp(p, **kw):
    return p.train.mlp.model_copy(update={"max_epochs": 3, "patience": 10, "threads": 1, **kw})


def weights(fit) -> dict:
    return {k: v.clone().numpy() for k, v in fit.model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def fresh(setup):
    p, pre, train, val, target = setup
    return weights(train_mlp(pre, train, val, target, mlp(p), seed=5))


def test_checkpoint_loads_with_weights_only_and_a_rerun_resumes_from_it(setup, fresh, tmp_path,
                                                                        caplog):
    import torch

    p, pre, train, val, target = setup
    ckpt = tmp_path / "mlp.pt"
    train_mlp(pre, train, val, target, mlp(p), seed=5, checkpoint=ckpt)
    saved = torch.load(ckpt, weights_only=True)  # tensors and plain types only
    assert saved["state"]["epoch"] == 2
    with caplog.at_level(logging.INFO, logger=LOGGER):
        again = train_mlp(pre, train, val, target, mlp(p), seed=5, checkpoint=ckpt)
    assert f"resuming from checkpoint {ckpt} after epoch 2" in caplog.text
    assert same(weights(again), fresh)
    assert [f.name for f in tmp_path.iterdir()] == ["mlp.pt"]  # no temp file left


class _RunsOnLoad:
    """A pickle that touches a file when loaded: what a hostile checkpoint could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (self.marker.touch, ())


def test_a_pickled_checkpoint_runs_no_code_and_training_starts_afresh(setup, fresh, tmp_path,
                                                                      caplog):
    import torch

    p, pre, train, val, target = setup
    ckpt, marker = tmp_path / "mlp.pt", tmp_path / "code-ran"
    torch.save({"key": "x", "payload": _RunsOnLoad(marker)}, ckpt)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        fit = train_mlp(pre, train, val, target, mlp(p), seed=5, checkpoint=ckpt)
    assert not marker.exists()
    assert f"checkpoint {ckpt} is unreadable" in caplog.text and "training from scratch" in caplog.text
    assert same(weights(fit), fresh)


@pytest.mark.parametrize("damage", ["truncated", "empty", "missing keys"])
def test_a_damaged_checkpoint_is_a_logged_restart_from_scratch(setup, fresh, tmp_path, caplog,
                                                               damage):
    import torch

    p, pre, train, val, target = setup
    ckpt = tmp_path / "mlp.pt"
    train_mlp(pre, train, val, target, mlp(p, max_epochs=1), seed=5, checkpoint=ckpt)
    if damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif damage == "empty":
        ckpt.write_bytes(b"")
    else:
        torch.save({"key": "whatever"}, ckpt)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        fit = train_mlp(pre, train, val, target, mlp(p), seed=5, checkpoint=ckpt)
    assert f"checkpoint {ckpt} is unreadable" in caplog.text
    assert same(weights(fit), fresh)


def test_checkpoint_writes_use_unique_temp_names_and_a_killed_write_leaves_nothing(
        setup, tmp_path, monkeypatch, caplog):
    import torch

    p, pre, train, val, target = setup
    ckpt = tmp_path / "mlp.pt"
    left_over = tmp_path / ".mlp.pt.k1ll3d.tmp"  # a write a killed process never finished
    left_over.write_bytes(b"half")
    written, real_save = [], torch.save

    def save(obj, f, *a, **kw):
        written.append(f)
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        train_mlp(pre, train, val, target, mlp(p), seed=5, checkpoint=ckpt)
    assert f"removing {left_over}" in caplog.text and not left_over.exists()
    names = [str(w) for w in written]
    assert len(set(names)) == 3 and all(n.startswith(str(tmp_path / ".mlp.pt.")) for n in names)

    def killed(obj, f, *a, **kw):
        open(f, "wb").write(b"partial")
        raise KeyboardInterrupt

    before = ckpt.read_bytes()
    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        train_mlp(pre, train, val, target, mlp(p, max_epochs=1, lr=0.01), seed=6, checkpoint=ckpt)
    assert ckpt.read_bytes() == before and [f.name for f in tmp_path.iterdir()] == ["mlp.pt"]
