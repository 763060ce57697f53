"""No hang, no stray kill: a stage past its timeout is killed with everything it started and
the error names it; the demo's wait stops when its worker dies; `make down` signals only the
processes it started (pid plus start time), never a pid the system gave to another process."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from driftloop.runs import WaitFailed, poll_until, wait_for_flow_run, why_stuck
from driftloop.services import ProcessRecord, Stack, process_start
from flows.common import StageTimeout, run_logged

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def running(pid: int) -> bool:
    return process_start(pid) is not None


def test_a_hung_stage_is_killed_with_its_children_and_the_error_names_it(tmp_path):
    script = "sleep 120 & echo grandchild=$!; echo started; sleep 120"
    log = logging.getLogger("test-stage")
    t0 = time.monotonic()
    with pytest.raises(StageTimeout) as err:
        run_logged(["bash", "-c", script], tmp_path, {"PATH": "/usr/bin:/bin"}, "stage 'train'",
                   timeout=1.5, knob="timeouts.stage_s", logger=log)
    assert time.monotonic() - t0 < 20
    msg = str(err.value)
    assert "stage 'train' did not finish within 1.5s" in msg and "timeouts.stage_s" in msg
    assert "started" in msg  # its last output
    child = int(re.search(r"grandchild=(\d+)", msg).group(1))
    assert not running(child)  # the background grandchild went with it


def test_a_stage_within_its_timeout_is_untouched(tmp_path):
    run_logged(["bash", "-c", "echo fine"], tmp_path, {"PATH": "/usr/bin:/bin"}, "stage 'x'",
               timeout=30, knob="timeouts.stage_s", logger=logging.getLogger("test-stage"))


@pytest.fixture
def stranger():
    """An unrelated live process (as if the system had reused a recorded pid)."""
    proc = subprocess.Popen(SLEEPER, start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("pid_file", ["other start time", "old format, pid only"])
def test_down_never_signals_a_pid_that_is_another_process_now(tmp_path, stranger, pid_file):
    stack = Stack(tmp_path)
    stack.run_dir.mkdir()
    started = process_start(stranger.pid)
    text = (json.dumps({"pid": stranger.pid, "started": started - 3600})
            if pid_file == "other start time" else str(stranger.pid))
    (stack.run_dir / "worker.pid").write_text(text)
    report = stack.stop()
    time.sleep(0.3)
    assert stranger.poll() is None, "an unrelated process was signalled"
    assert report.stopped == [] and f"pid {stranger.pid}" in report.skipped[0]
    assert "not signalled" in report.skipped[0]


def test_down_stops_the_process_group_it_started(tmp_path):
    stack = Stack(tmp_path)
    proc = stack._start("worker", ["bash", "-c", "sleep 120 & wait"])
    time.sleep(0.5)
    group = ProcessRecord.read(stack.run_dir / "worker.pid").group()
    assert len(group) == 2  # bash and its sleep
    report = stack.stop()
    assert report.stopped == ["worker"] and proc.wait(timeout=10) is not None
    assert not any(running(p) for p in group)


def scheduled_run():
    from prefect.states import Scheduled

    return SimpleNamespace(id="r1", name="brave-otter", state=Scheduled(), infrastructure_pid=None,
                           start_time=None, created=None)


def test_the_demo_wait_stops_when_its_worker_dies(tmp_path):
    stack = Stack(tmp_path)
    stack._start("worker", ["bash", "-c", "echo worker lost its API; sleep 0.5"])
    pid = stack.record("worker").pid
    t0 = time.monotonic()
    with pytest.raises(WaitFailed) as err:
        wait_for_flow_run("r1", timeout=120, poll=0.2, worker_gone=stack.worker_gone,
                          read=lambda _: scheduled_run())
    assert time.monotonic() - t0 < 15
    msg = str(err.value)
    assert "flow run brave-otter" in msg and "last state Scheduled" in msg
    assert f"worker of pool 'local' (pid {pid}) is not running" in msg
    assert "worker lost its API" in msg  # the tail of its log


def test_a_wait_times_out_naming_what_it_waited_for():
    now = [0.0]
    with pytest.raises(TimeoutError, match=r"waiting for flow run brave-otter .* after 30s"):
        wait_for_flow_run("r1", timeout=30, poll=5, read=lambda _: scheduled_run(),
                          clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert now[0] == 30
    assert poll_until(lambda: "done", what="x", timeout=0, poll=1) == "done"


@pytest.mark.parametrize("state, worker, process, stuck", [
    ("SCHEDULED", "worker dead", None, True),
    ("PENDING", "worker dead", None, True),
    ("SCHEDULED", None, None, False),
    ("RUNNING", "worker dead", None, False),  # its own process may still finish it
    ("RUNNING", None, "its flow-run process (pid 7) is gone", True),
    ("PENDING", None, "its flow-run process (pid 7) is gone", True),
])
def test_why_a_run_can_never_finish(state, worker, process, stuck):
    why = why_stuck(state, worker_gone=worker, process_gone=process)
    assert (why is not None) == stuck
    if stuck:
        assert (worker or process) in why
