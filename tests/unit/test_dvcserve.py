"""Which stage commands the flow's stage server may run itself (driftloop/dvcserve.py): only
`python -m <module> [args]` with nothing a shell would have to interpret (pure)."""

import pytest

from driftloop.dvcserve import module_of, python_env, stage_module


def test_python_m_commands_name_their_module_and_args():
    assert stage_module("python -m pipelines.train") == ("pipelines.train", [])
    assert stage_module("python3 -m pipelines.register --trigger-file data/interim/t.json") == \
        ("pipelines.register", ["--trigger-file", "data/interim/t.json"])
    assert stage_module("python -m pkg.mod 'two words' --x=1") == ("pkg.mod", ["two words", "--x=1"])


@pytest.mark.parametrize("cmd", [
    "python -m pipelines.train > log.txt",          # a redirect
    "python -m pipelines.train | tee log",          # a pipe
    "python -m pipelines.train && echo done",       # a list
    "python -m pipelines.train $ARGS",              # a variable
    "python -m pipelines.train *.csv",              # a glob
    "python pipelines/train.py",                    # a script, not a module
    "python -c 'print(1)'",
    "dvc repro",
    "python -m",
    "python -m 'not a module'",
    "python -m pipelines.train 'unterminated",
])
def test_anything_a_shell_must_interpret_is_left_to_the_shell(cmd):
    assert stage_module(cmd) is None


def test_the_module_is_known_before_interpolation_for_the_preloads():
    assert module_of("python -m pipelines.register --trigger-file ${paths.trigger}") == \
        "pipelines.register"
    assert module_of("echo hi") is None and module_of("python -m a-b") is None


def test_only_python_variables_decide_whether_a_stage_imports_as_the_server_did():
    assert python_env({"PATH": "/bin", "PYTHONPATH": "x", "PYTHONHASHSEED": "0", "HOME": "/"}) \
        == {"PYTHONPATH": "x", "PYTHONHASHSEED": "0"}


def test_the_stage_server_and_the_stages_name_the_wait_variable_alike():
    from driftloop import dvcserve, lock

    assert dvcserve.WAIT_ENV == lock.WAIT_ENV
