"""The parts of driftloop/stack.py that decide before anything starts: which Postgres, who runs
it, whether it can reach its folder, what a missing part is called."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from driftloop import stack


def test_a_folder_closed_to_the_postgres_user_is_named(tmp_path):
    uid, gid = os.getuid() + 12345, os.getgid() + 12345  # someone else
    # pytest's own temp folders are closed to others (0700): the first of them is named
    assert stack.blocked_folder(tmp_path / "state", uid, gid) in tmp_path.parents
    base = Path(tempfile.mkdtemp(prefix="driftloop-parts-"))
    try:
        base.chmod(0o755)
        closed = base / "closed"
        (closed / "state/postgres").mkdir(parents=True)
        closed.chmod(0o700)
        assert stack.blocked_folder(closed / "state/postgres", uid, gid) == closed
        closed.chmod(0o711)
        assert stack.blocked_folder(closed / "state/postgres", uid, gid) is None
    finally:
        shutil.rmtree(base)


def test_without_a_server_that_has_pg_trgm_the_reason_says_what_to_install(monkeypatch, tmp_path):
    no_trgm = tmp_path / "pginstall/bin"
    monkeypatch.setattr(stack, "postgres_bins", lambda: [no_trgm])
    monkeypatch.setattr(stack, "has_extension", lambda bindir, name: False)
    why = stack.missing_parts()
    assert why is not None and "pg_trgm" in why and str(no_trgm.parent) in why
    assert "postgresql-contrib" in why
    monkeypatch.setattr(stack, "postgres_bins", lambda: [])
    assert "servers found: none" in stack.missing_parts()


def test_the_chosen_server_has_the_extension_prefect_needs():
    bindir = stack.postgres_bin()
    if bindir is None:
        pytest.skip(stack.missing_parts())
    assert stack.has_extension(bindir, "pg_trgm")
    assert (bindir / "initdb").exists() and (bindir / "postgres").exists()


def test_as_root_postgres_runs_as_another_user():
    user = stack.pg_user()
    if os.geteuid() == 0:
        assert user is None or (user.pw_uid != 0 and user.pw_name in stack.PG_USERS)
    else:
        assert user.pw_uid == os.geteuid()


def test_a_new_stack_keeps_its_ports_and_keys_private(tmp_path):
    s = stack.ServerStack.create(tmp_path / "project", tmp_path / "state")
    saved = tmp_path / "state/stack.json"
    assert saved.stat().st_mode & 0o077 == 0
    again = stack.ServerStack.load(tmp_path / "state")
    assert again.ports == s.ports and again.keys == s.keys and again.mlflow_url == s.mlflow_url
    assert len(set(s.ports.values()) | {s.prefect_port, s.mlflow_port}) == len(s.ports) + 2
    worker = s.env()  # what the worker and its flow runs get: no database or bucket secret
    assert not any(v in worker.values() for v in s.keys.values() if v != s.keys["s3_access"])
