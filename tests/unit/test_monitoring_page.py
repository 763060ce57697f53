"""The monitoring page: what a person opening it must find, and that it never loads anything."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from driftloop.monitor.page import (
    _event_x,
    monitoring_html,
    order_checks,
    policy_events,
    replay_page,
    write_monitoring_page,
)

FEATURES = ["income", "age", "debt_to_income"]
EVIL = '<script>alert("x")</script>'
VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "source", "wbr"}
SVG_LEAVES = {"rect", "line", "circle", "path", "polyline"}  # written self-closed here


def verdict(week: int, *, drifted: tuple[str, ...] = (), action: str = "ok", version: int = 1,
            windows: tuple[tuple[int, float], ...] = (), estimate: float | None = None,
            features: list[str] = FEATURES) -> dict:
    """A verdict shaped like driftloop.monitor.drift.run's, after policy.apply."""
    batch = f"batch_2026-{week:02d}-01.parquet"
    cols = [{"column": c, "method": "wasserstein", "score": 0.3 if c in drifted else 0.02,
             "threshold": 0.1, "noise_floor": 0.05, "drifted": c in drifted,
             "why": "wasserstein 0.300 >= 0.1" if c in drifted else ""} for c in features]
    out = {"batch": batch, "status": "drift" if drifted else "no_drift",
           "reason": f"{len(drifted)} of {len(features)} features drifted",
           "share": len(drifted) / len(features), "drifted_columns": list(drifted), "columns": cols,
           "prediction_drift": None, "rows": 1500, "champion_version": version,
           "labelled_windows": [{"window": f"batch_2026-{w:02d}-01", "labelled": 1500,
                                 "metric": "auc", "value": v, "champion_test": 0.802,
                                 "drop": 0.802 - v} for w, v in windows],
           "performance": {"metric": "auc", "value": windows[-1][1], "champion_test": 0.802}
           if windows else None,
           "policy": {"action": action, "reason": f"because of week {week}", "key": batch,
                      "trigger": "drift" if action == "retrain" else None,
                      "at": f"2026-{week:02d}-02T06:00:00+00:00", "champion_version": version}}
    if estimate is not None:
        out["estimated_performance"] = {
            "rows": 1500, "threshold": 0.4, "confidence": 0.95, "calibration": "isotonic",
            "metrics": {"auc": {"estimate": estimate, "low": estimate - 0.02, "high": estimate + 0.02},
                        "f1": {"estimate": 0.5, "low": 0.45, "high": 0.55}}}
    return out


def history() -> list[dict]:
    return [verdict(1, estimate=0.8012),
            verdict(2, drifted=("income",), action="wait", estimate=0.7921),
            verdict(3, drifted=("income", "age"), action="retrain", windows=((1, 0.7934),),
                    estimate=0.7655),
            verdict(4, version=2, windows=((1, 0.7934), (2, 0.7512)))]


def write_history(root: Path, checks: list[dict]) -> None:
    for v in checks:
        folder = root / v["batch"].removesuffix(".parquet")
        folder.mkdir(parents=True)
        (folder / "verdict.json").write_text(json.dumps(v))


class Balance(HTMLParser):
    """Fails on a closing tag that does not match the open one: a broken page renders
    half-empty without any error."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def assert_well_formed(page: str) -> None:
    parser = Balance()
    parser.feed(page)
    parser.close()
    assert parser.stack == []


def table_rows(page: str, heading: str) -> list[str]:
    section = page.split(f"<h2>{heading}</h2>", 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", section)[1:]


def test_the_page_shows_batches_drift_retrains_and_both_metrics(tmp_path):
    write_history(tmp_path / "drift", history())
    out = write_monitoring_page(tmp_path / "drift", tmp_path / "monitoring.html", drift_share=0.25)
    page = out.read_text()
    assert_well_formed(page)
    rows = table_rows(page, "Checks")
    assert [re.search(r"<td>(batch_[^<]+)</td>", r)[1] for r in rows] == [
        f"batch_2026-{w:02d}-01" for w in (1, 2, 3, 4)]
    assert "income, age" in rows[2] and "retrain" in rows[2]
    assert page.count('data-kind="retrain"') == 3  # the marker on each of the three figures
    assert 'data-kind="champion"' in page          # v1 -> v2 between weeks 3 and 4
    assert "needed 0.25" in page
    # realized: on the row of the window it was measured on, not of the check that reported it
    assert "0.7934" in rows[0] and "0.7512" in rows[1] and "0.7934" not in rows[2]
    assert "0.7655 [0.7455, 0.7855]" in rows[2]
    assert "estimated auc" in page and "realized auc" in page


def test_the_heatmap_outlines_exactly_the_drifted_cells():
    page = monitoring_html(history(), [], title="t")
    cells = re.findall(r'<rect [^>]*class="drifted"><title>([^<]*)</title>', page)
    assert sorted(c.split(":")[0] for c in cells) == [
        "age, batch_2026-03-01", "income, batch_2026-02-01", "income, batch_2026-03-01"]
    assert ">income (2)<" in page and ">age (1)<" in page and ">debt_to_income<" in page


def test_without_a_threshold_or_labels_the_page_says_so_instead_of_drawing_nothing():
    page = monitoring_html([verdict(1), verdict(2)], [], title="t")
    assert "drift_share" not in page
    assert "No labelled windows and no estimates yet" in page
    assert 'data-kind="retrain"' not in page


def test_the_page_loads_nothing_from_anywhere(tmp_path):
    page = monitoring_html(history(), policy_events(history()), title="m")
    assert not re.search(r"<script|<link|<img|@import|url\(|https?://|//[a-z]", page, re.I)


def test_text_from_the_data_is_escaped():
    checks = [verdict(1, drifted=(EVIL,), features=[EVIL, "age"], action="retrain")]
    checks[0]["policy"]["reason"] = f'say "{EVIL}"'
    page = monitoring_html(checks, [{"at": "2026-01-01", "kind": "promotion", "version": EVIL,
                                     "reason": EVIL}], title=EVIL)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert_well_formed(page)


def test_an_unreadable_verdict_is_listed_and_the_rest_is_shown(tmp_path):
    root = tmp_path / "drift"
    write_history(root, history()[:2])
    (root / "batch_2026-09-01").mkdir()
    (root / "batch_2026-09-01" / "verdict.json").write_text('{"batch": "cut sh')
    (root / "batch_2026-10-01").mkdir()
    (root / "batch_2026-10-01" / "verdict.json").write_bytes(b"\xff\xfe\x00")
    (root / "batch_2026-11-01").mkdir()
    (root / "batch_2026-11-01" / "verdict.json").write_text("[1, 2]")
    page = write_monitoring_page(root, tmp_path / "m.html").read_text()
    problems = page.split("Not shown (unreadable)", 1)[1].split("</ul>", 1)[0]
    for name in ("batch_2026-09-01", "batch_2026-10-01", "batch_2026-11-01"):
        assert name in problems
    assert len(table_rows(page, "Checks")) == 2


def test_the_page_is_renamed_into_place_whole_and_no_temp_file_is_left(tmp_path, monkeypatch):
    """A reader (the MLflow UI, a browser refreshing) sees the old page or the new one."""
    import driftloop.io

    renames = []
    real = driftloop.io.os.replace
    monkeypatch.setattr(driftloop.io.os, "replace",
                        lambda src, dst: (renames.append((Path(src), Path(dst))), real(src, dst)))
    write_history(tmp_path / "drift", history())
    out_dir = tmp_path / "reports"
    (out_dir).mkdir()
    (out_dir / "monitoring.html").write_text("old")
    write_monitoring_page(tmp_path / "drift", out_dir / "monitoring.html")
    assert [dst for _, dst in renames] == [out_dir / "monitoring.html"]
    assert renames[0][0].parent == out_dir and renames[0][0] != out_dir / "monitoring.html"
    assert [p.name for p in out_dir.iterdir()] == ["monitoring.html"]
    text = (out_dir / "monitoring.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and text.endswith("</html>\n")


def test_a_verdict_of_the_wrong_shape_is_drawn_as_far_as_it_goes():
    odd = {"batch": 3, "status": None, "share": "x", "columns": "nope", "policy": "retrain",
           "labelled_windows": {"a": 1}, "performance": 5, "estimated_performance": [1],
           "drifted_columns": 7, "prediction_drift": "none", "checked_at": 12}
    page = monitoring_html([verdict(1), odd, verdict(2)], [{"kind": None}], title="t")
    assert_well_formed(page)
    assert len(table_rows(page, "Checks")) == 3


def test_an_empty_report_folder_gives_a_page_not_an_error(tmp_path):
    page = write_monitoring_page(tmp_path / "nothing", tmp_path / "m.html").read_text()
    assert "No drift checks yet" in page


def test_checks_go_by_their_own_time_when_all_have_one_else_by_batch():
    a, b = verdict(1), verdict(2)
    assert [c["batch"] for c in order_checks([b, a])] == [a["batch"], b["batch"]]
    a["checked_at"], b["checked_at"] = "2026-05-02T00:00:00Z", "2026-05-01T00:00:00Z"
    assert [c["batch"] for c in order_checks([a, b])] == [b["batch"], a["batch"]]
    del b["checked_at"]
    assert [c["batch"] for c in order_checks([b, a])] == [a["batch"], b["batch"]]


@pytest.mark.parametrize(("event", "x"), [
    ({"kind": "retrain", "batch": "batch_2026-02-01.parquet"}, 1.0),
    ({"kind": "promotion", "at": "2026-02-10T00:00:00+00:00"}, 1.5),  # after week 2's decision
    ({"kind": "promotion", "at": "2026-01-01T00:00:00"}, -0.5),        # naive means UTC
    ({"kind": "promotion", "at": "2027-01-01T00:00:00Z"}, 3.5),
    ({"kind": "promotion", "at": "not a time"}, None),
])
def test_events_sit_where_they_happened(event, x):
    assert _event_x(event, history()) == x


def test_the_newest_check_knows_a_window_best():
    old = verdict(2, windows=((1, 0.70),))
    new = verdict(3, windows=((1, 0.75),))  # more labels landed for week 1
    rows = table_rows(monitoring_html([verdict(1), old, new], [], title="t"), "Checks")
    assert "0.7500" in rows[0] and "0.7000" not in rows[0]


def test_sixty_checks_of_twenty_five_features_stay_small():
    features = [f"feature_{i:02d}" for i in range(25)]
    checks = [verdict(w % 12 + 1, drifted=tuple(features[:w % 7]), features=features,
                      action="retrain" if w % 15 == 14 else "ok", version=1 + w // 15,
                      windows=tuple((k % 12 + 1, 0.8 - k / 1000) for k in range(max(0, w - 8), w)),
                      estimate=0.79) for w in range(60)]
    for w, c in enumerate(checks):
        c["batch"] = f"batch_{w:03d}.parquet"
    page = monitoring_html(checks, policy_events(checks), title="big", drift_share=0.25)
    assert len(page.encode()) < 500_000
    assert_well_formed(page)


def replay_result() -> dict:
    rows = []
    for i in range(6):
        promoted = i == 3
        rows.append({"period": f"2026-{i + 1:02d}", "rows": 900, "serving_version": 1 + (i > 3),
                     "auc_policy": 0.80 - 0.01 * i + (0.03 if i > 3 else 0),
                     "auc_never": 0.80 - 0.01 * i, "auc_always": 0.805,
                     "drift_status": "drift" if i >= 2 else "no_drift",
                     "drift_share": 0.4 if i >= 2 else 0.05,
                     "action": "retrain" if i == 3 else ("wait" if i == 2 else "ok"),
                     "reason": f"period {i}",
                     "gate": "promoted v2: interval [+0.02, +0.05]" if promoted else ""})
    summary = {s: {"mean_metric": m, "retrains": r, "promotions": p}
               for s, m, r, p in (("policy", 0.7871, 1, 1), ("never", 0.7754, 0, 0),
                                  ("always", 0.8050, 5, 5))}
    return {"periods": rows, "summary": {**summary, "metric": "auc", "gap_closed": 0.4},
            "setup": {"metric": "auc", "first_test_metric": 0.81}}


def test_the_replay_page_shows_strategies_retrains_and_promotions():
    page = replay_page(replay_result())
    assert_well_formed(page)
    assert page.count('data-kind="promotion"') == 2 and page.count('data-kind="retrain"') == 2
    assert ">v2<" in page
    rows = table_rows(page, "Periods")
    assert len(rows) == 6 and "promoted v2" in rows[3] and "0.7500" in rows[5]
    assert "0.7871" in page and "0.40" in page  # the summary's mean and gap closed
    assert not re.search(r"<script|https?://", page)


def test_write_outputs_adds_the_page_to_the_replay_folder(tmp_path):
    from driftloop.monitor.replay import write_outputs

    written = write_outputs(replay_result(), tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {
        "replay.csv", "replay.png", "summary.json", "monitoring.html"}
    assert tmp_path / "monitoring.html" in written
    assert "promoted v2" in (tmp_path / "monitoring.html").read_text()
