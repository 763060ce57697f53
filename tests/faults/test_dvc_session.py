"""The flow's long-lived dvc (flows/common.py DvcSession, driftloop/dvcserve.py) behaves as a
`dvc` per command would: real `dvc repro` in a real repository, one process for all commands,
each stage getting that command's environment and no stdin; a failure raises with DVC's error;
a stage past its timeout is killed with everything it started and the next command still runs."""

from __future__ import annotations

import logging
import re
import subprocess
import time

import pytest
import yaml

from driftloop.services import offline_env, process_start
from flows.common import DvcSession, StageFailed, StageTimeout, dvc_session, run_dvc
from tests.helpers import BIN

LOG = logging.getLogger("test-dvc-session")
STAGES = {
    "env": "echo value=$DRIFTLOOP_TEST_VALUE > env.txt",
    "stdin": "cat > stdin.txt; printf 'no newline at the end'",
    "broken": "echo about to fail; exit 3",
    "slow": "sleep 120 & echo grandchild=$!; sleep 120",
    "pid": "echo $PPID > pid.txt",
}


@pytest.fixture
def repo(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=tmp_path, check=True, env=offline_env())
    stages = {name: {"cmd": cmd, "always_changed": True} for name, cmd in STAGES.items()}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    return tmp_path


def repro(session: DvcSession, stage: str, timeout: float = 60, **env: str) -> None:
    session.run(["repro", "--single-item", stage], offline_env(**env), f"stage {stage!r}",
                timeout=timeout, knob="timeouts.stage_s", logger=LOG)


def test_commands_share_one_dvc_process_and_each_gets_its_own_environment(repo, caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    with dvc_session(repo) as session:
        repro(session, "env", DRIFTLOOP_TEST_VALUE="one")
        assert (repo / "env.txt").read_text() == "value=one\n"
        first = session.proc.pid
        repro(session, "env", DRIFTLOOP_TEST_VALUE="two")
        assert (repo / "env.txt").read_text() == "value=two\n"
        # through run_dvc too, as the flow's tasks call it
        run_dvc(["repro", "--single-item", "pid"], repo, offline_env(), "stage 'pid'",
                timeout=60, logger=LOG)
        assert session.proc.pid == first
        assert int((repo / "pid.txt").read_text()) == first  # DVC started it, in-process
        assert "Running stage 'env'" in caplog.text  # DVC's output reaches the logger
    assert session.proc is None and process_start(first) is None  # closed with the session


def test_a_stage_reads_no_request_and_output_without_a_newline_is_kept(repo, caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    with dvc_session(repo) as session:
        repro(session, "stdin")
        assert (repo / "stdin.txt").read_text() == ""  # /dev/null, not the session's requests
        repro(session, "env", DRIFTLOOP_TEST_VALUE="after")  # the next request still arrives
    assert "no newline at the end" in caplog.text
    assert (repo / "env.txt").read_text() == "value=after\n"


def test_a_failing_stage_raises_with_its_output_and_the_session_goes_on(repo):
    with dvc_session(repo) as session:
        with pytest.raises(StageFailed) as err:
            repro(session, "broken")
        msg = str(err.value)
        assert "stage 'broken' failed (exit 255)" in msg and "about to fail" in msg
        assert "failed to reproduce 'broken'" in msg  # DVC's own error line
        repro(session, "env", DRIFTLOOP_TEST_VALUE="still")
    assert (repo / "env.txt").read_text() == "value=still\n"


def test_a_hung_stage_is_killed_with_its_children_and_the_next_command_starts_anew(repo):
    with dvc_session(repo) as session:
        repro(session, "env", DRIFTLOOP_TEST_VALUE="before")
        first = session.proc.pid
        t0 = time.monotonic()
        with pytest.raises(StageTimeout) as err:
            repro(session, "slow", timeout=3)
        assert time.monotonic() - t0 < 20
        msg = str(err.value)
        assert "stage 'slow' did not finish within 3s" in msg and "timeouts.stage_s" in msg
        assert "dvc repro --single-item slow" in msg
        grandchild = int(re.search(r"grandchild=(\d+)", msg).group(1))
        assert process_start(grandchild) is None and process_start(first) is None
        repro(session, "env", DRIFTLOOP_TEST_VALUE="after")
        assert session.proc.pid != first
    assert (repo / "env.txt").read_text() == "value=after\n"


def test_without_a_session_each_command_is_a_dvc_process_of_its_own(repo):
    run_dvc(["repro", "--single-item", "env"], repo, offline_env(DRIFTLOOP_TEST_VALUE="solo"),
            "stage 'env'", timeout=60, logger=LOG)
    assert (repo / "env.txt").read_text() == "value=solo\n"
    with pytest.raises(StageFailed, match="exit 255"):
        run_dvc(["repro", "--single-item", "broken"], repo, offline_env(), "stage 'broken'",
                timeout=60, logger=LOG)


def test_a_dvc_process_that_ended_between_commands_is_replaced(repo):
    with dvc_session(repo) as session:
        repro(session, "env", DRIFTLOOP_TEST_VALUE="one")
        first = session.proc
        first.kill()
        first.wait()
        repro(session, "env", DRIFTLOOP_TEST_VALUE="two")  # seen ended: a new one
        second = session.proc
        assert second.pid != first.pid
        second.kill()
        second.wait()
        second.poll = lambda: None  # as if it ended just after the check: the write fails
        repro(session, "env", DRIFTLOOP_TEST_VALUE="three")
        assert session.proc.pid not in (first.pid, second.pid)
    assert (repo / "env.txt").read_text() == "value=three\n"
