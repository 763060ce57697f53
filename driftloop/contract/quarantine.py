"""The quarantine layer: batches that broke the contract, each with its reports beside it.

`data/quarantine/<batch>/` holds the untouched batch file, `report.json` (every failed check)
and `report.html` (the same for people; self-contained, renders offline). `release` puts a
fixed file back into the landing folder so the next run picks it up.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from pathlib import Path

from driftloop.io import TABLE_SUFFIXES, write_json, write_text


class QuarantineError(RuntimeError):
    pass


def batch_key(file_name: str) -> str:
    """The quarantine folder name of a batch file: its name without the suffix."""
    return Path(file_name).stem


def quarantine(sources: list[Path], folder: Path, report: dict) -> Path:
    """Move a batch file into `folder` with its reports; `sources` are the places the batch is
    (raw file first, then its window link): the first existing one is moved, the others removed.

    Reports are written before the move, so an interruption leaves the batch where it was."""
    if folder.exists() and any(p.suffix in TABLE_SUFFIXES for p in folder.iterdir()):
        n = 2
        while folder.with_name(f"{folder.name}.{n}").exists():
            n += 1
        folder = folder.with_name(f"{folder.name}.{n}")
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "report.json", report)
    write_text(folder / "report.html", render_html(report))
    present = [p for p in sources if p.exists()]
    if not present:
        raise QuarantineError(f"{sources[0]}: batch file not found; nothing to quarantine")
    shutil.move(present[0], folder / present[0].name)
    for extra in present[1:]:
        extra.unlink()  # a hard link or copy of the file just moved
    return folder


def list_quarantined(root: Path) -> list[dict]:
    """One row per batch still in quarantine: folder, file, failed checks, first reason."""
    rows = []
    for folder in sorted(p for p in Path(root).glob("*") if p.is_dir()):
        files = [p.name for p in folder.iterdir() if p.suffix in TABLE_SUFFIXES]
        if not files:  # released: only the old reports are left
            continue
        try:
            report = json.loads((folder / "report.json").read_text())
        except (OSError, json.JSONDecodeError):
            report = {}
        failures = report.get("failures", [])
        rows.append({"batch": folder.name, "files": files, "failed_checks": len(failures),
                     "when": report.get("quarantined_at"),
                     "first": (failures[0].get("line") or failures[0].get("detail", ""))
                     if failures else "(no report.json)"})
    return rows


def release(root: Path, batch: str, landing: Path) -> Path:
    """Move the (fixed) batch file of `data/quarantine/<batch>/` back into landing; the reports
    stay, renamed `released-report.*`, so the history is kept."""
    folder = Path(root) / batch_key(batch)
    if not folder.is_dir():
        known = ", ".join(r["batch"] for r in list_quarantined(root)) or "none"
        raise QuarantineError(f"{folder}: no quarantined batch {batch!r}; quarantined: {known}")
    files = [p for p in folder.iterdir() if p.suffix in TABLE_SUFFIXES]
    if not files and (folder / "released-report.json").exists():
        raise QuarantineError(f"{folder}: batch {batch!r} was already released to {landing}")
    if len(files) != 1:
        raise QuarantineError(f"{folder}: expected one batch file, found {[p.name for p in files]};"
                              " leave exactly the fixed file there, then release again")
    dst = Path(landing) / files[0].name
    if dst.exists():
        raise QuarantineError(f"{dst}: a file of that name is already in landing; move it away first")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(files[0], dst)
    for name in ("report.json", "report.html"):
        if (folder / name).exists():
            os.replace(folder / name, folder / f"released-{name}")
    return dst


_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}.error{color:#b00020;font-weight:600}
.warn{color:#8a5a00}code{background:#f6f6f6;padding:0 3px}"""


def render_html(report: dict) -> str:
    """A self-contained page (inline CSS, no scripts, no links out), readable offline."""
    e = html.escape
    rows = []
    for f in report.get("failures", []):
        samples = ", ".join(f"row {r}: {e(json.dumps(v))}"
                            for r, v in zip(f.get("rows") or [], f.get("sample_values") or [], strict=False))
        if not samples and f.get("sample_values"):
            samples = e(json.dumps(f["sample_values"]))
        pct = f.get("unexpected_percent")
        rows.append(
            f"<tr><td class='{e(f['severity'])}'>{e(f['severity'])}</td><td>{e(f['check'])}</td>"
            f"<td>{e(str(f.get('column') or '(table)'))}</td><td>{f.get('unexpected_count') or ''}</td>"
            f"<td>{'' if pct is None else f'{pct:.2f}%'}</td><td>{samples}</td>"
            f"<td>{e(f.get('detail') or '')}</td></tr>")
    title = f"Data contract report: {report.get('batch', 'batches')}"
    facts = "".join(f"<li>{e(k)}: <code>{e(str(report[k]))}</code></li>"
                    for k in ("file", "suite", "rows", "quarantined_at", "release") if k in report)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1><ul>{facts}</ul>"
            "<table><tr><th>severity</th><th>check</th><th>column</th><th>unexpected</th>"
            "<th>percent</th><th>sample values (0-based row numbers)</th><th>detail</th></tr>"
            + "".join(rows) + "</table></body></html>\n")
