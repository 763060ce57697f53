"""charts: the inline SVG figures and HTML pieces of the monitoring pages.

Drawn here by hand rather than by a plotting library so that a page is one small text file
that opens offline anywhere (no scripts, fonts or styles loaded from anywhere), its points
carry their figures as tooltips, and tests can read what it shows. Every figure shares one
x axis (one position per check or period), so event markers line up across figures.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 960                 # every figure shares the x axis: markers line up across them
LEFT, RIGHT = 180, 20       # room for feature names on the heatmap
TOP, PLOT_H = 34, 170       # two rows of marker labels above a plot
LABEL_GAP = 50              # marker labels closer than this (px) go on the second row
X_LABEL_ROOM = 78           # rotated batch names under a plot
MAX_X_LABELS = 30           # beyond this, every k-th batch is named
HEAT_ROW_H = 12
MAX_HEAT_FEATURES = 40      # the rest are counted in a note, to keep the page small
HEAT_FULL = 2.0             # score / cut-off at which a cell is fully red
NAME_CHARS = 22             # feature names longer than this are cut (full name in the tooltip)
REASON_CHARS = 400          # a longer reason is cut in the table (full text in its tooltip)
STATUS_COLOR = {"drift": "#c0392b", "no_drift": "#27ae60", "insufficient_data": "#95a5a6"}
MARKER_COLOR = {"retrain": "#8e44ad", "promotion": "#16a085", "rollback": "#d35400",
                "champion": "#16a085"}
CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px;
vertical-align:top;text-align:left}th{background:#f4f4f4}
.num{text-align:right;font-variant-numeric:tabular-nums}.note{color:#666;font-size:12px}
.problem{color:#c0392b}.key{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
figure{margin:8px 0}figcaption{font-size:12px;color:#444}svg text{font-size:10px;fill:#333}
"""


def esc(value: object) -> str:
    """Every text that reaches the page goes through here: names and reasons come from data."""
    return html.escape("" if value is None else str(value), quote=True)


def num(value: object) -> float | None:
    """A finite number, or None for anything else (missing, NaN, text, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def fmt(value: object, spec: str = ".3f") -> str:
    v = num(value)
    return "" if v is None else format(v, spec)


def cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def cut_with_tip(text: str) -> str:
    """A long reason cut in its table cell, whole in the tooltip."""
    if len(text) <= REASON_CHARS:
        return esc(text)
    return f'<span title="{esc(text)}">{esc(cut(text, REASON_CHARS))}</span>'


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str
    dash: str = ""
    low: Sequence[float | None] | None = None   # an interval per point, drawn as a bar
    high: Sequence[float | None] | None = None
    points: bool = True
    point_colors: Sequence[str] | None = None


@dataclass(frozen=True)
class Marker:
    x: float      # in check positions; .5 falls between two checks
    kind: str
    label: str
    tip: str


def _xpos(i: float, n: int) -> float:
    return LEFT + (i + 0.5) * (WIDTH - LEFT - RIGHT) / max(n, 1)


def _x_labels(labels: Sequence[str], y: float) -> list[str]:
    step = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    out = []
    for i in range(0, len(labels), step):
        x = _xpos(i, len(labels))
        out.append(f'<text x="{x:.1f}" y="{y + 10:.1f}" text-anchor="end" '
                   f'transform="rotate(-40 {x:.1f} {y + 10:.1f})">{esc(cut(labels[i], 22))}</text>')
    return out


def _markers(markers: Sequence[Marker], n: int, top: float, bottom: float) -> list[str]:
    out, last = [], [-math.inf, -math.inf]  # the x of the latest label on each row
    for m in sorted(markers, key=lambda m: m.x):
        x = _xpos(m.x, n)
        row = 0 if x - last[0] >= LABEL_GAP else 1
        last[row] = x
        color = MARKER_COLOR.get(m.kind, "#555")
        dash = ' stroke-dasharray="5 3"' if m.kind == "retrain" else ""
        out.append(f'<g class="marker" data-kind="{esc(m.kind)}"><title>{esc(m.tip)}</title>'
                   f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}" '
                   f'stroke="{color}" stroke-width="1.5"{dash}/>'
                   f'<text x="{x + 2:.1f}" y="{top - 3 - 12 * row:.1f}" fill="{color}">'
                   f'{esc(m.label)}</text></g>')
    return out


def _range(series: Sequence[Series], fixed: tuple[float, float] | None,
           extra: Sequence[float]) -> tuple[float, float]:
    if fixed:
        return fixed
    vals = [v for s in series for seq in (s.values, s.low or (), s.high or ())
            for v in map(num, seq) if v is not None] + list(extra)
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.08 or 0.01
    return lo - pad, hi + pad


def line_chart(labels: Sequence[str], series: Sequence[Series], *, markers: Sequence[Marker] = (),
               y_range: tuple[float, float] | None = None, hline: tuple[float, str] | None = None,
               y_label: str = "") -> str:
    """Values per check (None leaves a gap), optional interval bars, a reference line and
    vertical event markers."""
    n = len(labels)
    bottom = TOP + PLOT_H
    lo, hi = _range(series, y_range, [hline[0]] if hline else [])

    def y(v: float) -> float:
        return bottom - (v - lo) / ((hi - lo) or 1.0) * PLOT_H

    parts = [f'<svg width="{WIDTH}" height="{bottom + X_LABEL_ROOM}" role="img">',
             f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{PLOT_H}" '
             'fill="#fbfbfb" stroke="#ccc"/>']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                     f'stroke="#eee"/><text x="{LEFT - 4}" y="{y(v) + 3:.1f}" '
                     f'text-anchor="end">{v:.3g}</text>')
    parts.append(f'<text x="{LEFT - 40}" y="{TOP - 8}" text-anchor="end">{esc(y_label)}</text>')
    if hline:
        parts.append(f'<g><title>{esc(hline[1])}</title><line x1="{LEFT}" x2="{WIDTH - RIGHT}" '
                     f'y1="{y(hline[0]):.1f}" y2="{y(hline[0]):.1f}" stroke="#c0392b" '
                     f'stroke-dasharray="6 3"/><text x="{WIDTH - RIGHT - 2}" '
                     f'y="{y(hline[0]) - 3:.1f}" text-anchor="end" fill="#c0392b">'
                     f'{esc(hline[1])}</text></g>')
    for s in series:
        parts.append(f'<g class="series" data-name="{esc(s.name)}">')
        for i in range(n):
            low = num(s.low[i]) if s.low else None
            high = num(s.high[i]) if s.high else None
            if low is not None and high is not None:
                x = _xpos(i, n)
                parts.append(f'<path d="M{x - 3:.1f} {y(low):.1f}h6M{x:.1f} {y(low):.1f}'
                             f'V{y(high):.1f}M{x - 3:.1f} {y(high):.1f}h6" stroke="{s.color}" '
                             'fill="none" opacity="0.6"/>')
        run: list[str] = []
        for i in [*range(n), None]:
            v = num(s.values[i]) if i is not None else None
            if v is None:
                if len(run) > 1:
                    dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
                    parts.append(f'<polyline points="{" ".join(run)}" fill="none" '
                                 f'stroke="{s.color}" stroke-width="1.5"{dash}/>')
                run = []
                continue
            run.append(f"{_xpos(i, n):.1f},{y(v):.1f}")
        for i in range(n if s.points else 0):
            if (v := num(s.values[i])) is not None:
                color = s.point_colors[i] if s.point_colors else s.color
                tip = f"{labels[i]}: {s.name} {v:.4g}"
                if s.low and s.high and num(s.low[i]) is not None and num(s.high[i]) is not None:
                    tip += f" [{num(s.low[i]):.4g}, {num(s.high[i]):.4g}]"
                parts.append(f'<circle cx="{_xpos(i, n):.1f}" cy="{y(v):.1f}" r="2.8" '
                             f'fill="{color}"><title>{esc(tip)}</title></circle>')
        parts.append("</g>")
    parts += _markers(markers, n, TOP, bottom)
    parts += _x_labels(labels, bottom)
    parts.append("</svg>")
    return "".join(parts)


def _heat_color(ratio: float) -> str:
    """White at 0, amber at the cut-off, red at HEAT_FULL times it."""
    r = min(max(ratio, 0.0), HEAT_FULL)
    if r <= 1:
        a, b, t = (255, 255, 255), (245, 176, 65), r
    else:
        a, b, t = (245, 176, 65), (192, 57, 43), (r - 1) / (HEAT_FULL - 1)
    return "#" + "".join(f"{round(p + (q - p) * t):02x}" for p, q in zip(a, b, strict=True))


def _cutoff(col: dict) -> float | None:
    """What a score must exceed to count: the larger of the threshold and the noise floor."""
    found = [v for v in (num(col.get("threshold")), num(col.get("noise_floor"))) if v is not None]
    return max(found) if found and max(found) > 0 else None


def _ratio(col: dict) -> float:
    """A feature's score over its cut-off: 1 is where it starts to count."""
    score, cutoff = num(col.get("score")), _cutoff(col)
    return score / cutoff if score is not None and cutoff else 0.0


def heatmap(labels: Sequence[str], cells: Sequence[dict[str, dict]], *,
            markers: Sequence[Marker] = ()) -> tuple[str, int]:
    """Features (rows) x checks (columns), each cell its score over its cut-off; drifted cells
    outlined. Returns the SVG and how many features were left out."""
    n = len(labels)
    drifts: dict[str, int] = {}
    peak: dict[str, float] = {}
    for per_check in cells:
        for name, col in per_check.items():
            drifts[name] = drifts.get(name, 0) + bool(col.get("drifted"))
            peak[name] = max(peak.get(name, 0.0), _ratio(col))
    order = sorted(drifts, key=lambda c: (-drifts[c], -peak[c], c))
    shown, hidden = order[:MAX_HEAT_FEATURES], len(order) - MAX_HEAT_FEATURES
    bottom = TOP + HEAT_ROW_H * len(shown)
    w = (WIDTH - LEFT - RIGHT) / max(n, 1)
    parts = [f'<svg width="{WIDTH}" height="{bottom + X_LABEL_ROOM}" role="img">']
    for r, name in enumerate(shown):
        y = TOP + r * HEAT_ROW_H
        times = drifts[name]
        weight = ' font-weight="bold"' if times else ""
        parts.append(f'<text x="{LEFT - 4}" y="{y + HEAT_ROW_H - 2}" text-anchor="end"{weight}>'
                     f'<title>{esc(name)}: drifted in {times} check(s)</title>'
                     f'{esc(cut(name, NAME_CHARS))}{" (" + str(times) + ")" if times else ""}</text>')
        for i, per_check in enumerate(cells):
            x = LEFT + i * w
            col = per_check.get(name)
            if col is None:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{HEAT_ROW_H - 1}" '
                             'fill="#eee"/>')
                continue
            drifted = bool(col.get("drifted"))
            edge = ' stroke="#000" stroke-width="1.2" class="drifted"' if drifted else ""
            tip = (f"{name}, {labels[i]}: {col.get('method', '')} {fmt(col.get('score'))} vs "
                   f"cut-off {fmt(_cutoff(col))}" + (f" DRIFTED ({col.get('why') or ''})" if drifted else ""))
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{HEAT_ROW_H - 1}" '
                         f'fill="{_heat_color(_ratio(col))}"{edge}><title>{esc(tip)}</title></rect>')
    parts += _markers(markers, n, TOP, bottom)
    parts += _x_labels(labels, bottom)
    parts.append("</svg>")
    return "".join(parts), max(hidden, 0)


def legend(items: Sequence[tuple[str, str]]) -> str:
    return "".join(f'<span class="key" style="background:{c}"></span>{esc(t)}' for t, c in items)


def table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """`rows` hold HTML already escaped cell by cell."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if j in numeric else f"<td>{c}</td>"
                                    for j, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def html_page(title: str, body: Sequence[str]) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1>{''.join(body)}</body></html>\n")


def figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"
