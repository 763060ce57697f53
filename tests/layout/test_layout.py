"""The repository tells the truth about itself: each DVC stage lists as deps every project file
it imports (transitively) and every path it opens by params key; stages never import stages;
the library never imports a stage or a flow; no import cycles."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml

from driftloop.dag import parse_stages

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("driftloop", "pipelines", "flows")
# params keys a stage touches that are deliberately not DVC deps or outs, and why
NOT_TRACKED = {
    ("train", "checkpoint"): "scratch file, deleted when training finishes",
    ("ingest", "quarantine"): "an unreadable file goes there; not a pipeline output",
    ("validate", "quarantine"): "a rejected batch goes there on failure; not a pipeline output",
    ("validate", "raw"): "a rejected batch is moved out of the raw layer on failure",
    ("*", "mlflow_artifacts"): "MLflow's own artifact store; reports name the runs in it",
    ("*", "locks"): "who holds the training and champion locks; coordination, not data",
    ("validate", "validate_cache"): "verdicts of batches already checked; a speed-up only, "
                                    "the outputs are the same without it",
}


def module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_trivial(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


@cache
def direct_imports(path: Path) -> frozenset[str]:
    """Project modules `path` imports anywhere (top level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                names.add(sub if module_file(sub) else node.module)
    return frozenset(n for n in names if n.split(".")[0] in PACKAGES)


def closure(module: str) -> set[str]:
    """`module` and every project module it imports, transitively, with their packages."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # packages run on import
        todo += list(direct_imports(module_file(name)))
    return seen


def path_keys(path: Path) -> set[tuple[str, str]]:
    """("path", key) for params.path("key"), ("report", stage) for params.report_dir("stage")."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("path", "report_dir") and len(node.args) == 1
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.add(("path" if node.func.attr == "path" else "report", node.args[0].value))
    return out


def stages():
    return parse_stages(yaml.safe_load((ROOT / "dvc.yaml").read_text()))


def test_every_stage_has_a_module_and_only_stages_live_in_pipelines():
    modules = {p.stem for p in (ROOT / "pipelines").glob("*.py") if p.stem != "__init__"}
    assert modules == {s.name for s in stages()}
    for s in stages():
        assert s.cmd.startswith(f"python -m pipelines.{s.name}"), s.cmd


@pytest.mark.parametrize("stage", [s.name for s in stages()])
def test_dvc_yaml_lists_every_file_a_stage_imports(stage):
    (spec,) = [s for s in stages() if s.name == stage]
    files = {module_file(m) for m in closure(f"pipelines.{stage}")}
    needed = {f.relative_to(ROOT).as_posix() for f in files if not _is_trivial(f)}
    missing = sorted(needed - set(spec.deps))
    assert not missing, f"dvc.yaml stage {stage!r} lacks deps {missing}"


@pytest.mark.parametrize("stage", [s.name for s in stages()])
def test_dvc_yaml_lists_every_path_a_stage_opens(stage):
    (spec,) = [s for s in stages() if s.name == stage]
    declared = [*spec.deps, *spec.outs]
    keys = set().union(*(path_keys(module_file(m)) for m in closure(f"pipelines.{stage}")))
    missing = []
    for kind, key in sorted(keys):
        if (stage, key) in NOT_TRACKED or ("*", key) in NOT_TRACKED:
            continue
        if kind == "path" and f"${{paths.{key}}}" not in declared:
            missing.append(f"${{paths.{key}}}")
        if kind == "report" and not any(d.startswith(f"${{paths.reports}}/{key}") for d in declared):
            missing.append(f"${{paths.reports}}/{key}/...")
    assert not missing, f"dvc.yaml stage {stage!r} opens {missing} but lists them in neither deps nor outs"


def test_no_stage_imports_a_stage_and_the_library_imports_neither_stages_nor_flows():
    for path in ROOT.glob("pipelines/*.py"):
        stagey = {m for m in direct_imports(path) if m.startswith("pipelines")}
        assert not stagey, f"{path.name} imports stage(s) {stagey}"
    for path in ROOT.glob("driftloop/**/*.py"):
        bad = {m for m in direct_imports(path) if m.startswith(("pipelines", "flows"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_no_import_cycles():
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for n in sorted(direct_imports(module_file(m))):
            if n == m or module_file(n) is None or m.startswith(n + "."):
                continue  # a module importing its own package is not a cycle between modules
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, m, n]))
            if n not in state:
                visit(n, [*trail, m])
        state[m] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m, [])


def test_the_checker_sees_a_missing_dep():
    """The rule is not vacuous: a stage that imports a library module is caught without it."""
    assert "driftloop.metrics" in closure("pipelines.evaluate")
    assert ("path", "splits") in path_keys(module_file("pipelines.evaluate"))
