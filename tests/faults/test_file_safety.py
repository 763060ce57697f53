"""Files the pipeline writes: the usual modes, unique temp names in the target folder, and no
alert URL (they carry tokens) in logs, reports, the decision log or the policy state."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
from pathlib import Path

import matplotlib
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from driftloop import io
from driftloop.config import load_params
from tests.helpers import ROOT

matplotlib.use("Agg")


@pytest.fixture
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _figure():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    return fig


WRITERS = {
    "write_json": lambda p: io.write_json(p, {"a": 1}),
    "write_text": lambda p: io.write_text(p, "text\n"),
    "write_csv": lambda p: io.write_csv(p, pd.DataFrame({"a": [1]})),
    "write_parquet": lambda p: io.write_parquet(p, pd.DataFrame({"a": [1]})),
    "write_arrow": lambda p: io.write_arrow(p, pa.table({"a": [1]})),
    "write_png": lambda p: io.write_png(p, _figure()),
    "write_file": lambda p: io.write_file(p, lambda t: t.write_bytes(b"<html></html>")),
}


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002], indirect=True, ids=oct)
@pytest.mark.parametrize("writer", list(WRITERS))
def test_written_files_get_the_mode_open_would_give(tmp_path, umask, writer):
    plain = tmp_path / "plain"
    plain.write_text("x")  # what a plain open() makes under this umask
    out = WRITERS[writer](tmp_path / "reports" / "out.bin")
    assert oct(out.stat().st_mode & 0o777) == oct(plain.stat().st_mode & 0o777) \
        == oct(0o666 & ~umask)
    assert [p.name for p in out.parent.iterdir()] == ["out.bin"]  # no temp left behind


@pytest.mark.parametrize("umask", [0o022, 0o027], indirect=True, ids=oct)
def test_replaced_folders_get_the_mode_mkdir_would_give(tmp_path, umask):
    (tmp_path / "plain").mkdir()
    for content in ("old", "new"):  # a first build, then a swap over the old one
        out = io.replace_dir(tmp_path / "model", lambda d, c=content: (d / "f").write_text(c))
    assert oct(out.stat().st_mode & 0o777) == oct((tmp_path / "plain").stat().st_mode & 0o777)
    assert (out / "f").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "plain"]


def test_two_writers_of_one_file_never_share_a_temp_name(tmp_path):
    """A second write of the same file while the first is still writing (two flows, a retry)
    gets its own temp file in the same folder: neither clobbers the other's half-written data."""
    target = tmp_path / "reports" / "report.html"
    temps: list[Path] = []

    def outer(tmp: Path) -> None:
        temps.append(tmp)
        tmp.write_text("outer, first half")
        io.write_file(target, inner)
        tmp.write_text(tmp.read_text() + ", second half")

    def inner(tmp: Path) -> None:
        temps.append(tmp)
        tmp.write_text("inner")

    io.write_file(target, outer)
    assert len(set(temps)) == 2 and {t.parent for t in temps} == {target.parent}
    assert all(t.name.startswith(".report.html.") for t in temps)
    assert target.read_text() == "outer, first half, second half"
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


TEMP_LITERAL = re.compile(r"""["'][^"'\n]*\.(tmp|old|part|partial|swp)["']""")
UNIQUE = ("mkstemp", "mkdtemp", "uuid", "glob(", "NamedTemporaryFile")


def test_no_fixed_temp_names_in_the_code():
    """A literal temp name (`out / ".report.html.tmp"`, `path.with_suffix(".tmp")`) is shared by
    every writer of that file; each temp name must be made unique where it is made."""
    fixed = []
    for folder in ("driftloop", "pipelines", "flows"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if TEMP_LITERAL.search(line) and not any(u in line for u in UNIQUE):
                    fixed.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not fixed, "fixed temp names:\n" + "\n".join(fixed)


# ------------------------------------------------------------------ secrets in alert URLs
SECRETS = ("PASSWORD7731", "PATHTOKEN7731", "QUERYTOKEN7731", "SLACKA7731", "SLACKB7731",
           "SLACKC7731", "BOTTOKEN7731", "HOSTTOKEN7731", "ENVTOKEN7731")


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _urls() -> tuple[list[str], str]:
    port = _dead_port()
    own = [f"json://alerts:PASSWORD7731@127.0.0.1:{port}/hooks/PATHTOKEN7731?token=QUERYTOKEN7731",
           "slack://SLACKA7731/SLACKB7731/SLACKC7731",
           "tgram://123456789:BOTTOKEN7731/4242",
           "no-such-scheme://HOSTTOKEN7731/PATHTOKEN7731"]
    env = f"jsons://127.0.0.1:{port}/ENVTOKEN7731"
    return own, env


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The demo params with alert URLs in params.yaml and in the environment."""
    own, env = _urls()
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["alerts"].update(urls=own, timeout=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    shutil.copytree(ROOT / "expectations", tmp_path / "expectations")
    monkeypatch.setenv("DRIFTLOOP_ALERT_URLS", env)
    # every request goes to a proxy nobody listens on: no alert leaves the machine, even online
    dead = f"http://127.0.0.1:{_dead_port()}"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, dead)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    return load_params(tmp_path / "params.yaml")


def test_alert_urls_never_reach_logs_verdicts_decisions_or_messages(project, caplog):
    from driftloop.monitor import alerts, policy

    caplog.set_level(logging.DEBUG)  # every logger, apprise's own included
    urls = alerts.alert_urls(project.alerts)
    assert len(urls) == 5 and all(any(s in u for s in SECRETS) for u in urls)
    result = {"batch": "batch_2026-03-02.parquet", "status": "drift", "share": 0.5,
              "reason": "4 of 23 features drifted", "champion_version": 3, "rows": 1500,
              "reference_rows": 2000, "drifted_columns": ["age"], "columns": [],
              "prediction_drift": None, "performance": None, "labelled_windows": [],
              "report_html": "reports/drift/batch_2026-03-02/report.html", "mlflow_run_id": "r1"}
    decision = policy.apply(project, result)
    title, body = alerts.message(result, decision)
    failed = alerts.send(urls, title, body, timeout=project.alerts.timeout)
    # every URL failed (nothing listens, no network), and each is named without its secrets
    assert len(failed) == len(urls)
    assert failed[0].startswith("json://127.0.0.1:") and failed[1] == "slack://***/..."
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "alert to json://127.0.0.1:" in logged  # the failures are logged ...
    assert _leaks(logged) == []                    # ... without a token
    assert _leaks("\n".join(failed)) == []
    assert _leaks(title + body) == []
    written = [p for p in project.root.rglob("*") if p.is_file() and p.name != "params.yaml"]
    assert {p.name for p in written} >= {"verdict.json", "decisions.jsonl", "policy_state.json"}
    for p in written:
        assert _leaks(p.read_text(errors="replace")) == [], p
