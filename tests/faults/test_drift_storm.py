"""Fault: a drift storm. 20 drifted batches checked at once, by 20 processes on the same
real policy state files, give exactly one retrain; every decision is logged with its reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import yaml

from tests.helpers import ROOT

N = 20
POLICY = {"consecutive_drift": 1, "min_drift_labels": 0, "cooldown_hours": 24, "max_per_week": 2}
# N processes forked from one fresh interpreter (one import, no threads yet), released
# together by a barrier; each applies the policy to its own drifted batch's check result, as
# driftloop.monitor.drift.run returns it
STORM = """
import multiprocessing as mp, sys, time
from driftloop.config import load_params
from driftloop.monitor import policy
params, n = load_params(sys.argv[1]), int(sys.argv[2])

def check(i, barrier, out):
    result = {"batch": f"batch_{i:02d}.parquet", "status": "drift", "champion_version": 1,
              "share": 0.6, "reason": "9 of 15 features drift", "drifted_columns": ["income"],
              "performance": None, "labelled_windows": []}
    barrier.wait()
    # the retrain request (an event to the Prefect API) takes a moment, under the state lock
    out.put(policy.apply(params, result, request=lambda d: time.sleep(0.2))["action"])

ctx = mp.get_context("fork")
barrier, out = ctx.Barrier(n), ctx.Queue()
procs = [ctx.Process(target=check, args=(i, barrier, out)) for i in range(n)]
for p in procs: p.start()
actions = [out.get(timeout=60) for _ in procs]
for p in procs: p.join()
print(" ".join(actions))
sys.exit(max(p.exitcode for p in procs))
"""


def test_twenty_drifted_batches_at_once_ask_for_one_retrain(tmp_path):
    from driftloop.config import load_params

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["policy"].update(POLICY)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(tmp_path / "params.yaml")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", STORM, str(tmp_path / "params.yaml"), str(N)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - started < 60  # within a minute

    actions = sorted(proc.stdout.split())
    assert actions == ["cooldown"] * (N - 1) + ["retrain"], actions
    log = [json.loads(line) for line in params.path("decisions").read_text().splitlines()]
    assert len(log) == N and sorted(r["key"] for r in log) == [f"batch_{i:02d}.parquet"
                                                               for i in range(N)]
    assert all(r["reason"] and r["drift_status"] == "drift" for r in log)
    (retrain,) = [r for r in log if r["action"] == "retrain"]
    assert all("cooldown 24 h" in r["reason"] for r in log if r is not retrain)
    state = json.loads(params.path("policy_state").read_text())
    assert len(state["retrains"]) == 1 and state["triggered"] == [retrain["key"]]
    for r in log:  # each batch's verdict carries its decision
        verdict = json.loads((params.report_dir("drift") / r["key"].removesuffix(".parquet")
                              / "verdict.json").read_text())
        assert verdict["policy"]["action"] == r["action"]
