"""Why a training run started, handed to the `register` stage as a file named on its command
line (dvc.yaml), so the stage receives it explicitly and DVC does not rerun on it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from driftloop.io import write_json

Kind = Literal["schedule", "drift", "manual"]
KINDS: tuple[str, ...] = ("schedule", "drift", "manual")
MANUAL = "manual"  # a run with no trigger file: `dvc repro` or a stage run by hand


@dataclass(frozen=True)
class Trigger:
    kind: Kind
    reason: str


def write_trigger(path: Path, trigger: Trigger) -> Path:
    if trigger.kind not in KINDS:
        raise ValueError(f"trigger {trigger.kind!r} is not one of {list(KINDS)}")
    return write_json(path, asdict(trigger))


def read_trigger(path: Path | None) -> Trigger:
    """The trigger in `path`; no file means a manual run."""
    if path is None or not path.exists():
        return Trigger(MANUAL, "")
    try:
        raw = json.loads(path.read_text())
        trigger = Trigger(str(raw["kind"]), str(raw.get("reason", "")))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a trigger file ({exc}); delete it to record a manual "
                         "run, or rerun the train flow, which writes it") from None
    if trigger.kind not in KINDS:
        raise ValueError(f"{path}: trigger {trigger.kind!r} is not one of {list(KINDS)}; "
                         "delete the file or fix its `kind`")
    return trigger
