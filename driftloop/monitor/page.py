"""page: one self-contained HTML page that shows the monitoring loop over time.

A single drift check answers "is this batch drifting"; a person deciding whether to trust the
loop needs the story: how the drift share and each feature's score moved, how the champion
performed once labels landed (and what was estimated before they did), and where retrains
and promotions happened. The figures are inline SVG (`driftloop.monitor.charts`), so the page
opens offline from a file, a mail attachment or an MLflow artifact view: no scripts, fonts or
styles are loaded from anywhere.

`monitoring_html` and `replay_page` are pure (dicts in, text out); `write_monitoring_page`
reads `<report_root>/*/verdict.json` and writes the page atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from driftloop.io import write_text
from driftloop.monitor.charts import (
    STATUS_COLOR,
    Marker,
    Series,
    cut_with_tip,
    esc,
    figure,
    fmt,
    heatmap,
    html_page,
    legend,
    line_chart,
    num,
    table,
)

# ----------------------------------------------------------------------------- reading verdicts
CHECK_TIME_KEYS = ("checked_at", "time")  # a verdict's own time, when it carries one
STRATEGY_COLOR = {"policy": "#2c7fb8", "never": "#7f8c8d", "always": "#e67e22"}
REALIZED_COLOR, ESTIMATE_COLOR, TEST_COLOR = "#2c3e50", "#3498db", "#7f8c8d"


def _field(record: dict, key: str, kind: type) -> dict | list:
    """`record[key]` when it has the expected shape, else an empty one: a verdict from an
    older or damaged writer must not take the page down."""
    value = record.get(key)
    return value if isinstance(value, kind) else kind()


def _when(value: object) -> datetime | None:
    """An ISO time as an aware datetime (naive means UTC), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _stem(name: object) -> str:
    """A batch file name as a labelled window is named (`batch_x.parquet` -> `batch_x`)."""
    text = str(name or "?")
    return text.rsplit(".", 1)[0] if text.endswith((".parquet", ".csv")) else text


# ----------------------------------------------------------------------------- drift checks
def check_time(verdict: dict) -> datetime | None:
    """The check's own time, when the verdict carries one."""
    for key in CHECK_TIME_KEYS:
        if (t := _when(verdict.get(key))) is not None:
            return t
    return None


def order_checks(checks: Sequence[dict]) -> list[dict]:
    """By each check's time when every verdict has one, else by batch name (names sort by
    time). Not by the policy's decision time: a batch judged again when its labels land
    would jump to the end."""
    if checks and all(check_time(c) is not None for c in checks):
        return sorted(checks, key=lambda c: (check_time(c), str(c.get("batch", ""))))
    return sorted(checks, key=lambda c: str(c.get("batch", "")))


def policy_events(checks: Sequence[dict]) -> list[dict]:
    """A retrain marker for every check whose policy record asked for one."""
    out = []
    for c in checks:
        rec = _field(c, "policy", dict)
        if rec.get("action") == "retrain":
            out.append({"at": rec.get("at"), "kind": "retrain", "batch": c.get("batch"),
                        "version": c.get("champion_version"),
                        "reason": f"{rec.get('trigger') or ''}: {rec.get('reason') or ''}".strip(": ")})
    return out


def _champion_changes(checks: Sequence[dict], events: Sequence[dict]) -> list[dict]:
    """A champion that changed between two checks, unless an event already names the move."""
    named = {str(e.get("version")) for e in events if e.get("kind") in ("promotion", "rollback")}
    out = []
    for prev, cur in zip(checks, checks[1:], strict=False):
        a, b = prev.get("champion_version"), cur.get("champion_version")
        if a is not None and b is not None and str(a) != str(b) and str(b) not in named:
            out.append({"kind": "champion", "version": b, "before": cur.get("batch"),
                        "reason": f"champion v{a} -> v{b} between {prev.get('batch')} and "
                                  f"{cur.get('batch')}"})
    return out


def _event_x(event: dict, checks: Sequence[dict]) -> float | None:
    """Where an event sits on the checks' axis: on the check it names, just before the check
    it preceded, else by time against the checks' times (own time, else the policy's)."""
    batches = [str(c.get("batch")) for c in checks]
    if event.get("batch") is not None and str(event["batch"]) in batches:
        return float(batches.index(str(event["batch"])))
    if event.get("before") is not None and str(event["before"]) in batches:
        return batches.index(str(event["before"])) - 0.5
    at = _when(event.get("at"))
    times = [check_time(c) or _when(_field(c, "policy", dict).get("at")) for c in checks]
    if at is None or not any(times):
        return None
    for i, t in enumerate(times):
        if t is not None and t >= at:
            return i - 0.5
    return len(checks) - 0.5


def _realized(checks: Sequence[dict]) -> tuple[str | None, dict[str, dict]]:
    """The measured metric per window (batch stem), the newest check's word winning: labels
    keep landing, so a later check knows a window better."""
    metric, windows = None, {}
    for c in checks:
        for w in _field(c, "labelled_windows", list):
            if isinstance(w, dict) and num(w.get("value")) is not None:
                metric = metric or w.get("metric")
                windows[str(w.get("window"))] = w
    return metric, windows


def _estimate(check: dict, metric: str | None) -> tuple[str | None, dict | None]:
    est = check.get("estimated_performance")
    metrics = est.get("metrics") if isinstance(est, dict) else None
    if not isinstance(metrics, dict) or not metrics:
        return None, None
    name = metric if metric in metrics else ("auc" if "auc" in metrics else next(iter(metrics)))
    return name, metrics[name] if isinstance(metrics[name], dict) else None


@dataclass(frozen=True)
class Performance:
    """What the page knows of the champion's performance, one entry per check."""
    metric: str | None                 # the realized metric's name
    realized: list[float | None]       # on the check's own batch, once its labels landed
    test: list[float | None]           # the serving champion's test figure
    estimate_name: str | None
    estimates: list[dict]              # {"estimate", "low", "high"} or {}


def performance(checks: Sequence[dict], labels: Sequence[str]) -> Performance:
    """Realized metrics placed on the batch they were measured on (not on the later check
    that reported them), next to the estimate each check made before labels."""
    metric, windows = _realized(checks)
    name, estimates = None, []
    for c in checks:
        found, e = _estimate(c, metric)
        name = name or found
        estimates.append(e or {})
    return Performance(metric, [num((windows.get(lb) or {}).get("value")) for lb in labels],
                       [num(_field(c, "performance", dict).get("champion_test")) for c in checks],
                       name, estimates)


def _markers_for(checks: Sequence[dict], events: Sequence[dict]) -> tuple[list, list[Marker]]:
    """Every event with its position (None: outside the checks shown) and the markers drawn."""
    placed = [(e, _event_x(e, checks)) for e in [*events, *_champion_changes(checks, events)]]
    markers = [Marker(x, str(e.get("kind", "event")),
                      str(e.get("kind")) if e.get("kind") == "retrain" else f"v{e.get('version')}",
                      f"{e.get('kind')} v{e.get('version')} {e.get('at') or ''}: {e.get('reason') or ''}")
               for e, x in placed if x is not None]
    return placed, markers


def _drift_share_section(checks: Sequence[dict], labels: list[str], markers: list[Marker],
                         drift_share: float | None) -> str:
    status = [str(c.get("status", "")) for c in checks]
    share = Series("drift share", [num(c.get("share")) for c in checks], "#34495e",
                   point_colors=[STATUS_COLOR.get(s, "#555") for s in status])
    hline = (drift_share, f"needed {drift_share:.2f}") if num(drift_share) is not None else None
    return "<h2>Dataset drift: share of drifted features</h2>" + figure(
        line_chart(labels, [share], markers=markers, y_range=(0.0, 1.0), hline=hline,
                   y_label="share"),
        legend([(s, STATUS_COLOR[s]) for s in STATUS_COLOR])
        + ("; dashed red: the share needed for dataset drift" if hline else ""))


def _features_section(checks: Sequence[dict], labels: list[str], markers: list[Marker]) -> str:
    cells = []
    for c in checks:
        per = {str(col.get("column")): col for col in _field(c, "columns", list)
               if isinstance(col, dict)}
        if isinstance(pred := c.get("prediction_drift"), dict):
            per["prediction: " + str(pred.get("column", "score"))] = pred
        cells.append(per)
    svg, hidden = heatmap(labels, cells, markers=markers)
    return "<h2>Per-feature drift: score over its cut-off</h2>" + figure(
        svg, "White: far below the cut-off (the larger of the threshold and the noise floor); "
        "amber: at it; red: twice it or more; outlined: judged drifted; grey: not checked. "
        "(n): checks in which the feature drifted."
        + (f" {hidden} more feature(s), the least drifted, not shown." if hidden else ""))


def _performance_section(perf: Performance, labels: list[str], markers: list[Marker]) -> str:
    series = []
    if any(v is not None for v in perf.realized):
        series.append(Series(f"realized {perf.metric}", perf.realized, REALIZED_COLOR))
    if any(v is not None for v in perf.test):
        series.append(Series("champion test figure", perf.test, TEST_COLOR, dash="4 3",
                             points=False))
    est = perf.estimates
    if any(num(e.get("estimate")) is not None for e in est):
        series.append(Series(f"estimated {perf.estimate_name}", [e.get("estimate") for e in est],
                             ESTIMATE_COLOR, dash="2 2", low=[e.get("low") for e in est],
                             high=[e.get("high") for e in est]))
    if not series:
        return '<h2>Champion performance</h2><p class="note">No labelled windows and no estimates yet.</p>'
    return "<h2>Champion performance</h2>" + figure(
        line_chart(labels, series, markers=markers, y_label=perf.metric or perf.estimate_name or ""),
        legend([(s.name, s.color) for s in series]) + ". Realized: on the batch's labelled rows, "
        "once they landed; estimated: from the scores alone, with its interval (blind to concept "
        "drift).")


def _checks_table(checks: Sequence[dict], labels: list[str], perf: Performance) -> str:
    rows = []
    for i, c in enumerate(checks):
        rec, e, status = _field(c, "policy", dict), perf.estimates[i], str(c.get("status", ""))
        interval = (f"{fmt(e.get('estimate'), '.4f')} [{fmt(e.get('low'), '.4f')}, "
                    f"{fmt(e.get('high'), '.4f')}]" if num(e.get("estimate")) is not None else "")
        rows.append([
            esc(labels[i]), esc(c.get("champion_version", "")), esc(c.get("rows", "")),
            f'<span style="color:{STATUS_COLOR.get(status, "#222")}" '
            f'title="{esc(c.get("reason", ""))}">{esc(status)}</span>',
            fmt(c.get("share"), ".2f"), esc(", ".join(map(str, _field(c, "drifted_columns", list)))),
            fmt(perf.realized[i], ".4f"), esc(interval), esc(rec.get("action", "")),
            cut_with_tip(str(rec.get("reason") or ""))])
    return "<h2>Checks</h2>" + table(
        ["batch", "champion", "rows", "status", "share", "drifted columns",
         f"realized {perf.metric or ''}".strip(), f"estimated {perf.estimate_name or ''}".strip(),
         "policy", "reason"], rows, numeric=(2, 4, 6))


def _events_table(placed: list) -> str:
    return "<h2>Retrains and champion changes</h2>" + table(
        ["at", "kind", "version", "batch", "reason"],
        [[esc(e.get("at") or ""), esc(e.get("kind", "")), esc(e.get("version", "")),
          esc(_stem(e.get("batch") or e.get("before") or "")),
          cut_with_tip(str(e.get("reason") or "")) + ("" if x is not None else
                                                      " (outside the checks shown)")]
         for e, x in placed])


def monitoring_html(checks: list[dict], events: list[dict], *, title: str,
                    drift_share: float | None = None, problems: Sequence[str] = ()) -> str:
    """The monitoring page for drift-check verdicts in time order (`driftloop.monitor.drift`
    `run`, with the policy's record), with retrain/promotion/rollback `events`
    ({"at", "kind", "version", "reason"}, optionally "batch"). `drift_share` draws the
    dataset-drift threshold; `problems` are listed (e.g. verdict files that could not be
    read)."""
    labels = [_stem(c.get("batch")) for c in checks]
    placed, markers = _markers_for(checks, events)
    body = [f'<p class="note">{len(checks)} drift check(s)'
            + (f", {esc(labels[0])} to {esc(labels[-1])}" if checks else "") + ". Hover a point "
            "or cell for its figures. Markers: dashed purple = retrain requested, solid = "
            "champion changed.</p>"]
    if problems:
        body.append('<div class="problem"><b>Not shown (unreadable):</b><ul>'
                    + "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul></div>")
    if not checks:
        return html_page(title, [*body, "<p>No drift checks yet.</p>"])
    perf = performance(checks, labels)
    body += [_drift_share_section(checks, labels, markers, drift_share),
             _features_section(checks, labels, markers),
             _performance_section(perf, labels, markers), _checks_table(checks, labels, perf)]
    if placed:
        body.append(_events_table(placed))
    return html_page(title, body)


def read_checks(report_root: Path) -> tuple[list[dict], list[str]]:
    """Every `<report_root>/*/verdict.json` that reads as a JSON object, and a line for each
    that does not (the page lists them instead of failing: one damaged file must not hide
    the rest of the history)."""
    checks, problems = [], []
    for path in sorted(Path(report_root).glob("*/verdict.json")):
        try:
            verdict = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{path.parent.name}/{path.name}: {type(exc).__name__}: {exc}")
            continue
        if not isinstance(verdict, dict):
            problems.append(f"{path.parent.name}/{path.name}: not a JSON object")
            continue
        checks.append({"batch": path.parent.name, **verdict})
    return checks, problems


def write_monitoring_page(report_root: Path, out: Path, *, events: list[dict] | None = None,
                          title: str = "driftloop monitoring", drift_share: float | None = None
                          ) -> Path:
    """The page for every drift check under `report_root` (reports/drift/), with retrain
    markers from their policy records plus `events` (e.g. the champion history), written
    atomically to `out`."""
    checks, problems = read_checks(report_root)
    checks = order_checks(checks)
    html_text = monitoring_html(checks, [*policy_events(checks), *(events or [])], title=title,
                                drift_share=drift_share, problems=problems)
    return write_text(Path(out), html_text)


# ----------------------------------------------------------------------------- replay
def _replay_markers(periods: Sequence[dict], labels: list[str]) -> list[Marker]:
    """A retrain on the period whose check asked; a promotion just after it (the challenger
    serves from the next period)."""
    markers = []
    for i, p in enumerate(periods):
        gate = str(p.get("gate") or "")
        if p.get("action") == "retrain":
            markers.append(Marker(i, "retrain", "retrain", f"retrain at {labels[i]}: "
                                  f"{p.get('reason', '')}; gate: {gate}"))
        if gate.startswith("promoted"):
            version = gate.split(":", 1)[0].removeprefix("promoted").strip()
            markers.append(Marker(i + 0.5, "promotion", version or "promoted", gate))
    return markers


def _replay_summary(summary: dict, metric: str) -> str:
    rows = [[esc(s), fmt((summary.get(s) or {}).get("mean_metric"), ".4f"),
             esc((summary.get(s) or {}).get("retrains", "")),
             esc((summary.get(s) or {}).get("promotions", ""))]
            for s in STRATEGY_COLOR if s in summary]
    gap = fmt(summary.get("gap_closed"), ".2f")
    return ("<h2>Summary</h2>" + table(["strategy", f"mean {metric}", "retrains", "promotions"],
                                       rows, numeric=(1, 2, 3))
            + (f'<p class="note">gap closed by the policy (never -> always): {gap}</p>' if gap else ""))


def _streams_section(summary: dict) -> str:
    """False alarms on the null stream and detection delay on the onset stream, if run."""
    rows = []
    if n := summary.get("null"):
        rows.append(["null stream", esc(f"{n['periods']} {n['every']}s"),
                     esc(f"{n['false_retrains']} ({fmt(n['false_retrains_per_year'], '.2f')}/year)"),
                     esc(f"{n['false_drift']} ({fmt(n['false_drift_per_year'], '.2f')}/year)"),
                     "", ""])
    if o := summary.get("onset"):
        rows.append(["onset stream", esc(f"{o['periods']} {o['every']}s, onset at {o['onset']}"),
                     esc(o["false_retrains_before_onset"]), esc(o["false_drift_before_onset"]),
                     esc("never" if o["detection_delay"] is None else o["detection_delay"]),
                     fmt(o.get("metric_drop_after_onset"), ".3f")])
    if not rows:
        return ""
    return ("<h2>False alarms and detection delay</h2>" + table(
        ["stream", "periods", "false retrains", "false drift verdicts",
         "detection delay (periods)", "metric drop after onset"], rows)
        + '<p class="note">Null stream: periods resampled from the champion\'s drift reference, '
          "so every drift verdict and retrain is false. Onset stream: null periods, then the "
          "data's own periods after the champion's window.</p>")


def _periods_table(periods: Sequence[dict], labels: list[str], metric: str,
                   strategies: list[str]) -> str:
    rows = []
    for i, p in enumerate(periods):
        status = str(p.get("drift_status", ""))
        rows.append([esc(labels[i]), esc(p.get("rows", "")), esc(p.get("serving_version", "")),
                     *(fmt(p.get(f"{metric}_{s}"), ".4f") for s in strategies),
                     f'<span style="color:{STATUS_COLOR.get(status, "#222")}">{esc(status)}</span>',
                     fmt(p.get("drift_share"), ".2f"), esc(p.get("action", "")),
                     cut_with_tip(str(p.get("reason") or "")), esc(p.get("gate") or "")])
    k = len(strategies)
    return "<h2>Periods</h2>" + table(
        ["period", "rows", "serving", *(f"{metric} {s}" for s in strategies), "drift", "share",
         "policy", "reason", "gate"], rows, numeric=(1, 2, *range(3, 3 + k), 4 + k))


def replay_page(result: dict, *, title: str = "driftloop replay",
                drift_share: float | None = None) -> str:
    """The same kind of page for a `driftloop.monitor.replay.run_replay` result: the realized
    metric of each strategy per period, the drift share, retrains and promotions marked, and
    the periods table."""
    periods = result.get("periods") or []
    summary, setup = result.get("summary") or {}, result.get("setup") or {}
    metric = str(summary.get("metric") or setup.get("metric") or "metric")
    strategies = [s for s in STRATEGY_COLOR if any(f"{metric}_{s}" in p for p in periods)]
    labels = [str(p.get("period", "?")) for p in periods]
    markers = _replay_markers(periods, labels)
    body = [f'<p class="note">{len(periods)} period(s) replayed'
            + (f", {esc(labels[0])} to {esc(labels[-1])}" if labels else "")
            + ". Dashed purple: the policy asked for a retrain; solid green: the gate promoted "
            "the challenger (it serves from the next period).</p>"]
    if summary:
        body += [_replay_summary(summary, metric), _streams_section(summary)]
    if not periods:
        return html_page(title, [*body, "<p>No periods replayed.</p>"])
    series = [Series(s, [p.get(f"{metric}_{s}") for p in periods], STRATEGY_COLOR[s])
              for s in strategies]
    first = num(setup.get("first_test_metric"))
    body.append(f"<h2>Realized {esc(metric)} per period</h2>" + figure(
        line_chart(labels, series, markers=markers, y_label=metric,
                   hline=(first, "first champion's test figure") if first is not None else None),
        legend([(s.name, s.color) for s in series])))
    checks = [{"status": p.get("drift_status"), "share": p.get("drift_share")} for p in periods]
    body += [_drift_share_section(checks, labels, markers, drift_share),
             _periods_table(periods, labels, metric, strategies)]
    return html_page(title, body)
