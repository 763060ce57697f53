"""The pipeline's stages as `dvc.yaml` declares them: their order, and what the train flow
needs to know about each. `dvc.yaml` is the one list of stages; nothing repeats it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

DVC_FILE = "dvc.yaml"


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    writes_mlflow: bool   # its outputs name MLflow runs: never restored from DVC's run cache
    append_only: bool     # it has a `persist: true` output (the raw layer): never checked out again


def _out_paths(items: list) -> tuple[tuple[str, ...], bool]:
    paths, persist = [], False
    for item in items or []:
        if isinstance(item, dict):
            ((path, opts),) = item.items()
            persist = persist or bool((opts or {}).get("persist"))
            paths.append(path)
        else:
            paths.append(item)
    return tuple(paths), persist


def parse_stages(dvc_yaml: dict) -> list[Stage]:
    """The stages of a parsed dvc.yaml, in file order (which is pipeline order) (pure)."""
    out = []
    for name, spec in (dvc_yaml.get("stages") or {}).items():
        outs, persist = _out_paths([*(spec.get("outs") or []), *(spec.get("metrics") or [])])
        deps = tuple(d if isinstance(d, str) else next(iter(d)) for d in spec.get("deps") or [])
        out.append(Stage(name=name, cmd=spec["cmd"], deps=deps, outs=outs,
                         writes_mlflow=bool((spec.get("meta") or {}).get("writes_mlflow")),
                         append_only=persist))
    return out


def read_stages(root: Path) -> list[Stage]:
    path = Path(root) / DVC_FILE
    try:
        return parse_stages(yaml.safe_load(path.read_text()) or {})
    except (OSError, yaml.YAMLError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the pipeline's stages ({exc}); "
                         "restore dvc.yaml from git") from None


def stages_to_restore(stages: list[Stage], failed: str) -> list[str]:
    """After `failed` fails, the stages whose last good outputs go back (pure): it and every
    later one, except append-only ones, whose layer must keep the files that arrived."""
    names = [s.name for s in stages]
    return [s.name for s in stages[names.index(failed):] if not s.append_only]
