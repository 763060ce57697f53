"""The flow's long-lived dvc (flows/common.py DvcSession, driftloop/dvcserve.py) behaves as a
`dvc` per command would: real `dvc repro` in a real repository, one process for all commands,
each stage getting that command's environment and no stdin; a failure raises with DVC's error;
a stage past its timeout is killed with everything it started and the next command still runs.
Given stage modules, its stage server runs `python -m` stages warm, as a process would run them."""

from __future__ import annotations

import json
import logging
import os
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
    "hello": "python -m stagepkg.hello one 'two words'",
    "fail": "python -m stagepkg.fail",
    "hang": "python -m stagepkg.hang",
}
# a stage module as the project's are: LAZY_IMPORTS names what its run imports later
MODULES = {
    "__init__.py": "",
    "marker.py": "",
    "hello.py": (
        "import json, os, sys\n"
        "warm = 'stagepkg.marker' in sys.modules  # imported ahead by the stage server\n"
        "LAZY_IMPORTS = ('stagepkg.marker',)\n"
        "if __name__ == '__main__':\n"
        "    print('hello from the stage')\n"
        "    json.dump({'argv': sys.argv[1:], 'value': os.environ.get('DRIFTLOOP_TEST_VALUE'),\n"
        "               'cwd': os.getcwd(), 'pid': os.getpid(), 'ppid': os.getppid(),\n"
        "               'warm': warm, 'wait': os.environ.get('DRIFTLOOP_STAGE_SERVER_WAIT')},\n"
        "              open('hello.json', 'w'))\n"),
    "fail.py": "if __name__ == '__main__':\n    raise ValueError('column x holds -1: fix the input')\n",
    "hang.py": ("import os, time\nif __name__ == '__main__':\n"
                "    print('stage pid', os.getpid(), flush=True)\n    time.sleep(120)\n"),
}


@pytest.fixture
def repo(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=tmp_path, check=True, env=offline_env())
    stages = {name: {"cmd": cmd, "always_changed": True} for name, cmd in STAGES.items()}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    (tmp_path / "stagepkg").mkdir()
    for name, text in MODULES.items():
        (tmp_path / "stagepkg" / name).write_text(text)
    return tmp_path


WARM = [STAGES["hello"], STAGES["fail"], "echo not a python stage"]


def parent_of(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])


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


def test_python_stages_run_warm_in_the_stage_server_as_a_process_would(repo, caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    with dvc_session(repo, WARM) as session:
        assert session.preload == ("stagepkg.hello", "stagepkg.fail")
        repro(session, "hello", DRIFTLOOP_TEST_VALUE="one")
        first = json.loads((repo / "hello.json").read_text())
        assert first["argv"] == ["one", "two words"] and first["value"] == "one"
        assert os.path.realpath(first["cwd"]) == os.path.realpath(repo)
        assert first["warm"], "the stage imported what the server had imported ahead"
        waited, own = map(float, first["wait"].split())  # for the server, for its LAZY_IMPORTS
        assert 0 <= own <= waited < 60
        server = first["ppid"]
        assert server != session.proc.pid and parent_of(server) == session.proc.pid
        repro(session, "hello", DRIFTLOOP_TEST_VALUE="two")  # a new child, the same server
        second = json.loads((repo / "hello.json").read_text())
        assert second["value"] == "two" and second["warm"] and second["ppid"] == server
        assert second["pid"] != first["pid"] and process_start(first["pid"]) is None
        repro(session, "env", DRIFTLOOP_TEST_VALUE="shell")  # not `python -m`: a process
        assert (repo / "env.txt").read_text() == "value=shell\n"
        proc = session.proc
    assert "hello from the stage" in caplog.text  # its output reaches the logger
    assert process_start(server) is None and process_start(proc.pid) is None


def test_without_preloads_a_python_stage_is_a_process_of_its_own(repo):
    with dvc_session(repo) as session:
        repro(session, "hello", DRIFTLOOP_TEST_VALUE="cold")
    out = json.loads((repo / "hello.json").read_text())
    assert out["value"] == "cold" and not out["warm"] and out["wait"] is None


def test_a_python_stage_that_raises_fails_with_its_traceback_and_the_server_goes_on(repo):
    with dvc_session(repo, WARM) as session:
        with pytest.raises(StageFailed) as err:
            repro(session, "fail")
        msg = str(err.value)
        assert "stage 'fail' failed (exit 255)" in msg
        assert "ValueError: column x holds -1: fix the input" in msg  # the stage's traceback
        repro(session, "hello", DRIFTLOOP_TEST_VALUE="after")
    out = json.loads((repo / "hello.json").read_text())
    assert out["value"] == "after" and out["warm"]


def test_a_hung_warm_stage_is_killed_with_the_server_and_the_next_one_starts_warm(repo):
    with dvc_session(repo, [*WARM, STAGES["hang"]]) as session:
        repro(session, "hello", DRIFTLOOP_TEST_VALUE="before")
        server = json.loads((repo / "hello.json").read_text())["ppid"]
        with pytest.raises(StageTimeout) as err:
            repro(session, "hang", timeout=5)
        stage = int(re.search(r"stage pid (\d+)", str(err.value)).group(1))
        assert process_start(stage) is None and process_start(server) is None
        repro(session, "hello", DRIFTLOOP_TEST_VALUE="after")
    out = json.loads((repo / "hello.json").read_text())
    assert out["value"] == "after" and out["warm"] and out["ppid"] != server


def test_a_stage_logs_its_wait_for_the_stage_server_beside_its_own_time(tmp_path, monkeypatch,
                                                                        caplog):
    from driftloop.lock import WAIT_ENV, stage_run
    from tests.helpers import demo_params

    params = demo_params().model_copy(update={"root": tmp_path})
    caplog.set_level("INFO", logger="driftloop.lock")
    with stage_run(params, "split"):
        pass
    assert "stage 'split' done in" in caplog.text and "waited" not in caplog.text
    caplog.clear()
    monkeypatch.setenv(WAIT_ENV, "2.500 1.950")
    with stage_run(params, "validate"):
        pass
    assert ("(it waited 2.50 s for the stage server, 1.95 s of them for its own LAZY_IMPORTS)"
            in caplog.text)
