"""docker/ is wired as it claims, checked without a Docker engine: `docker compose config` where
the compose plugin exists, and everywhere the YAML parsed and interpolated with the committed
env template, then checked service by service: URLs name services that exist, volumes are
declared, dependencies wait on a healthcheck or a finished one-shot, telemetry is off, the GPU
worker reserves NVIDIA devices; the images install the lock with hashes and run as non-root;
secrets stay out of git and out of the images. Each checker is also shown a broken copy."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from driftloop.services import OFFLINE_ENV

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
TEMPLATE = DOCKER / ".env.example"
DOCKERFILE = DOCKER / "Dockerfile"
TELEMETRY_OFF = {k: v for k, v in OFFLINE_ENV.items() if k != "OMP_WAIT_POLICY"}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0"}
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://(?:[^@/\s'\"]*@)?([A-Za-z0-9_.-]+)")
MUST_NOT_SHIP = (".git", ".venv", ".prefect", ".run", ".dvc/cache", ".dvc/config.local", "data",
                 "models", "reports", "mlruns.db", "mlartifacts", "dvc-remote", "docker/.env")


# ------------------------------------------------------------------ reading the files
def read_env(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def variables(node) -> set[str]:
    """Every ${VAR} a compose value uses (comments are not values: YAML drops them)."""
    if isinstance(node, dict):
        return set().union(*(variables(k) | variables(v) for k, v in node.items()))
    if isinstance(node, list):
        return set().union(*(variables(v) for v in node))
    return {m.group(1) for m in VAR.finditer(node)} if isinstance(node, str) else set()


def interpolate(node, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, applied to every value."""
    if isinstance(node, dict):
        return {interpolate(k, env): interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def value(m: re.Match) -> str:
        name, op, arg = m.groups()
        got = env.get(name)
        if op and op.endswith("-"):
            return got if got or (got is not None and op == "-") else arg
        if got is None or (op == ":?" and not got):
            raise KeyError(f"{COMPOSE.name}: ${{{name}}} is not set in {TEMPLATE.name}")
        return got

    return VAR.sub(value, node.replace("$$", "\0")).replace("\0", "$")


def load_compose(text: str | None = None, env: dict[str, str] | None = None) -> dict:
    raw = yaml.safe_load(COMPOSE.read_text() if text is None else text)
    return interpolate(raw, read_env(TEMPLATE.read_text()) if env is None else env)


def as_dict(env) -> dict[str, str]:
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in (env or {}).items()}


def strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def volume_source(entry) -> str:
    return entry.get("source", "") if isinstance(entry, dict) else entry.split(":", 1)[0]


def dockerfile_stages(text: str) -> dict[str, list[str]]:
    """Stage name -> its instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    stages: dict[str, list[str]] = {}
    current = None
    for line in filter(None, (s.strip() for s in joined.splitlines())):
        if m := re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.IGNORECASE):
            current = m.group(1) or f"stage{len(stages)}"
            stages[current] = []
        elif current is not None:
            stages[current].append(line)
    return stages


# ------------------------------------------------------------------ the checks
def compose_problems(compose: dict) -> list[str]:
    services: dict = compose.get("services", {})
    stages = dockerfile_stages(DOCKERFILE.read_text())
    out = [p for name, svc in services.items() for p in service_problems(name, svc, services, stages)]
    declared = set(compose.get("volumes") or {})
    used = {volume_source(v) for svc in services.values() for v in svc.get("volumes", [])
            if not volume_source(v).startswith((".", "/", "~"))}
    out += [f"{COMPOSE.name}: volume {v!r} is used but not declared under volumes:"
            for v in sorted(used - declared)]
    out += [f"{COMPOSE.name}: volume {v!r} is declared but unused" for v in sorted(declared - used)]
    gpu = [n for n, s in services.items() if s.get("build", {}).get("target") == "gpu"]
    for name in gpu or ["(none)"]:
        devices = (services.get(name, {}).get("deploy", {}).get("resources", {})
                   .get("reservations", {}).get("devices", []))
        if not any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices):
            out.append(f"{COMPOSE.name}: GPU worker {name} reserves no nvidia device "
                       "(deploy.resources.reservations.devices)")
    return out


def service_problems(name: str, svc: dict, services: dict, stages: dict) -> list[str]:
    where, out = f"{COMPOSE.name}: service {name}", []
    env = as_dict(svc.get("environment"))
    for key, val in TELEMETRY_OFF.items():
        if env.get(key) != val:
            out.append(f"{where}: telemetry not off ({key}={env.get(key)!r}, want {val!r})")
    for text in strings([env, svc.get("command"), svc.get("entrypoint"), svc.get("healthcheck")]):
        for scheme, host in URL.findall(text):
            if scheme != "s3" and host not in services and host not in LOCAL_HOSTS:
                out.append(f"{where}: {text!r} names host {host!r}, which is no service")
    for target, cond in _depends(svc).items():
        dep = services.get(target)
        if dep is None:
            out.append(f"{where}: depends_on {target!r}, which is no service")
        elif cond == "service_healthy" and "healthcheck" not in dep:
            out.append(f"{where}: waits for {target} to be healthy, but it has no healthcheck")
        elif cond == "service_completed_successfully" and dep.get("restart") != "no":
            out.append(f"{where}: waits for {target} to complete, but it is no one-shot")
        elif cond not in ("service_healthy", "service_completed_successfully"):
            out.append(f"{where}: depends_on {target} with condition {cond!r}: wait for "
                       "service_healthy or service_completed_successfully")
    restart = svc.get("restart")
    if restart != "no" and not ("healthcheck" in svc and restart in ("always", "unless-stopped")):
        out.append(f"{where}: long-running services need a healthcheck and restart: "
                   f"unless-stopped (got restart={restart!r}); one-shots need restart: \"no\"")
    for source in map(volume_source, svc.get("volumes", [])):
        if source.startswith((".", "/", "~")) and not (COMPOSE.parent / source).exists():
            out.append(f"{where}: bind mount {source} does not exist")
    if build := svc.get("build"):
        context = (COMPOSE.parent / build.get("context", ".")).resolve()
        if context != ROOT or (context / build.get("dockerfile", "Dockerfile")) != DOCKERFILE:
            out.append(f"{where}: builds {build.get('dockerfile')} in {context}, not "
                       "docker/Dockerfile in the repository root")
        if build.get("target") not in stages:
            out.append(f"{where}: build target {build.get('target')!r} is no stage of "
                       f"{DOCKERFILE.name} ({', '.join(stages)})")
    return out


def _depends(svc: dict) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def dockerfile_problems(text: str) -> list[str]:
    stages = dockerfile_stages(text)
    out = []
    for target in ("cpu", "gpu"):
        users = [line.split()[1] for line in stages.get(target, []) if line.upper().startswith("USER ")]
        if not users or users[-1].split(":")[0] in ("root", "0"):
            out.append(f"{DOCKERFILE.name}: stage {target} must end as a non-root USER (got {users})")
    installs = [seg.strip() for lines in stages.values() for line in lines
                for seg in line.split("&&") if "pip install" in seg]
    for seg in installs:
        hashed = "--require-hashes" in seg
        project = "--no-deps" in seg and seg.endswith("/src")
        cuda_torch = "download.pytorch.org/whl/${TORCH_CUDA}" in seg and "torch==" in seg
        if not (hashed or project or cuda_torch):
            out.append(f"{DOCKERFILE.name}: `{seg}` installs without --require-hashes")
    for lock in ("/lock/lock.txt", "/lock/without-torch.txt"):
        if not any("--require-hashes" in s and f"-r {lock}" in s for s in installs):
            out.append(f"{DOCKERFILE.name}: nothing installs {lock} with --require-hashes")
    make_index = re.search(r"^TORCH_INDEX := (\S+)", (ROOT / "Makefile").read_text(), re.M)
    if make_index and f"TORCH_CPU_INDEX={make_index.group(1)}" not in text:
        out.append(f"{DOCKERFILE.name}: torch's CPU index differs from the Makefile's {make_index.group(1)}")
    return out


def dockerignore_problems(text: str) -> list[str]:
    entries = {line.strip().strip("/") for line in text.splitlines()}
    return [f".dockerignore: add {p} (the images must not carry it)"
            for p in MUST_NOT_SHIP if p not in entries]


def template_problems(compose_raw: dict, template: dict[str, str]) -> list[str]:
    used, listed = variables(compose_raw), set(template)
    return ([f"{TEMPLATE.name}: add {v} (the compose file uses ${{{v}}})" for v in sorted(used - listed)]
            + [f"{TEMPLATE.name}: {v} is used by nothing" for v in sorted(listed - used)])


# ------------------------------------------------------------------ the tests
def test_compose_is_wired():
    assert compose_problems(load_compose()) == []


def test_images_install_the_lock_with_hashes_and_run_as_non_root():
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_images_carry_no_state_or_secrets():
    assert dockerignore_problems((ROOT / ".dockerignore").read_text()) == []


def test_env_template_lists_every_variable_and_the_real_env_file_is_ignored():
    raw = yaml.safe_load(COMPOSE.read_text())
    assert template_problems(raw, read_env(TEMPLATE.read_text())) == []
    if shutil.which("git") and (ROOT / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=ROOT).returncode
        template = subprocess.run(["git", "check-ignore", "-q", "docker/.env.example"], cwd=ROOT)
        assert (ignored, template.returncode) == (0, 1), "docker/.env must be git-ignored, its template not"
    else:
        assert "docker/.env" in (ROOT / ".gitignore").read_text().splitlines()


def test_databases_and_bucket_prefixes_match_the_urls_that_use_them():
    services = load_compose()["services"]
    init_sql = (DOCKER / "postgres" / "init-databases.sh").read_text()
    owners = dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", init_sql))
    prefect_url = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    mlflow_cmd = services["mlflow"]["command"]
    mlflow_url = mlflow_cmd[mlflow_cmd.index("--backend-store-uri") + 1]
    for url, driver in ((prefect_url, "postgresql+asyncpg"), (mlflow_url, "postgresql")):
        m = re.fullmatch(r"([\w+]+)://(\w+):[^@]+@postgres:5432/(\w+)", url)
        assert m and m.group(1) == driver, url
        assert owners.get(m.group(3)) == m.group(2), f"{url}: no database {m.group(3)} owned by {m.group(2)}"
    assert "--serve-artifacts" in mlflow_cmd
    bucket = read_env(TEMPLATE.read_text())["S3_BUCKET"]
    grants = dict(re.findall(r"^grant (\S+) (\S+) ", (DOCKER / "minio" / "init-bucket.sh").read_text(), re.M))
    destination = mlflow_cmd[mlflow_cmd.index("--artifacts-destination") + 1]
    remote = services["worker"]["environment"]["DVC_REMOTE_URL"]
    assert {destination, remote} == {f"s3://{bucket}/{p}" for p in grants.values()}


def test_workers_poll_the_pools_the_deploy_one_shot_creates():
    services = load_compose()["services"]
    pools = set(re.findall(r"work-pool create (\S+)", (DOCKER / "deploy.sh").read_text()))
    prefect_yaml = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert {d["work_pool"]["name"] for d in prefect_yaml["deployments"]} <= pools
    for name in ("worker", "worker-gpu"):
        cmd = services[name]["command"]
        assert cmd[cmd.index("--pool") + 1] in pools, name
    assert "gpu" in services["worker-gpu"]["profiles"]


def test_shell_scripts_parse():
    for script in sorted(DOCKER.rglob("*.sh")):
        proc = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{script.relative_to(ROOT)}: {proc.stderr}"


def _run_with_stub(tmp_path: Path, script: Path, tool: str, stub: str, **env: str) -> list[str]:
    """Run `script` with `tool` replaced by a shell stub that logs its arguments; the calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / tool).write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/calls"\n{stub}\n')
    (bin_dir / tool).chmod(0o755)
    path = f"{bin_dir}:/usr/bin:/bin"
    proc = subprocess.run(["sh", str(script)], env={"PATH": path, "TMPDIR": str(tmp_path), **env},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return (tmp_path / "calls").read_text().splitlines()


@pytest.mark.parametrize("train_pool", ["local", "gpu"], ids=["train-on-cpu", "train-on-gpu"])
def test_deploy_one_shot_creates_the_pools_then_deploys(tmp_path, train_pool):
    calls = _run_with_stub(tmp_path, DOCKER / "deploy.sh", "prefect", "",
                           DRIFTLOOP_ROOT=str(tmp_path), TRAIN_POOL=train_pool)
    moved = ["--no-prompt deploy --name weekly --pool gpu"] if train_pool == "gpu" else []
    assert calls == ["work-pool create local --type process --overwrite",
                     "work-pool create gpu --type process --overwrite",
                     "--no-prompt deploy --all", *moved]


def test_bucket_one_shot_gives_each_key_its_prefix_once(tmp_path):
    # `mc admin user info` reports the dvc key's policy as attached already: no second attach
    stub = ('case "$*" in *"policy create"*) cp "$6" "$(dirname "$0")/../$5.json" ;; '
            '*"user info store dvc-key"*) echo "PolicyName: driftloop-dvc" ;; esac')
    keys = dict(MLFLOW_S3_ACCESS_KEY="mlflow-key", MLFLOW_S3_SECRET_KEY="mlflow-secret",
                DVC_S3_ACCESS_KEY="dvc-key", DVC_S3_SECRET_KEY="dvc-secret")
    calls = _run_with_stub(tmp_path, DOCKER / "minio" / "init-bucket.sh", "mc", stub,
                           MINIO_ROOT_USER="root", MINIO_ROOT_PASSWORD="root-secret",
                           S3_BUCKET="driftloop", **keys)
    assert "mb --ignore-existing store/driftloop" in calls
    assert [c for c in calls if "policy attach" in c] == [
        "admin policy attach store driftloop-mlflow --user mlflow-key"]
    for name, prefix in (("driftloop-mlflow", "mlflow"), ("driftloop-dvc", "dvc")):
        policy = json.loads((tmp_path / f"{name}.json").read_text())
        objects = [s["Resource"] for s in policy["Statement"] if "s3:PutObject" in s["Action"]]
        assert objects == [[f"arn:aws:s3:::driftloop/{prefix}/*"]]


def _sync():
    spec = importlib.util.spec_from_file_location("sync_workspace", DOCKER / "sync_workspace.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sync


def test_workspace_sync_copies_changed_code_and_keeps_state(tmp_path):
    sync = _sync()
    image, workspace = tmp_path / "image", tmp_path / "workspace"
    (image / "flows").mkdir(parents=True)
    (image / "flows" / "train.py").write_text("v1")
    (image / "deploy.sh").write_text("#!/bin/sh\n")
    (image / "deploy.sh").chmod(0o755)
    (workspace / "data").mkdir(parents=True)
    (workspace / "data" / "window.parquet").write_text("state")
    (workspace / "dvc.lock").write_text("state")
    assert len(sync(image, workspace)) == 2
    assert (workspace / "deploy.sh").stat().st_mode & 0o111
    assert sync(image, workspace) == []                      # a restart rewrites nothing
    (image / "flows" / "train.py").write_text("v2")
    assert sync(image, workspace) == [workspace / "flows" / "train.py"]
    assert (workspace / "flows" / "train.py").read_text() == "v2"
    assert (workspace / "dvc.lock").read_text() == "state"
    assert not list(workspace.rglob("*.tmp"))


def test_compose_config_renders_with_the_template():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode:
        pytest.skip("no `docker compose` here: the YAML checks above stand in for `compose config`")
    proc = subprocess.run([docker, "compose", "--env-file", str(TEMPLATE), "-f", str(COMPOSE),
                           "--profile", "gpu", "config", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------ the checks can fail
def _broken(mutate) -> dict:
    compose = copy.deepcopy(load_compose())
    mutate(compose["services"], compose)
    return compose


BROKEN_COMPOSE = {
    "unknown host": (lambda s, c: s["worker"]["environment"].update(
        PREFECT_API_URL="http://prefect:4200/api"), "names host 'prefect'"),
    "undeclared volume": (lambda s, c: c["volumes"].pop("workspace"), "'workspace' is used"),
    "missing dependency": (lambda s, c: s["deploy"]["depends_on"].update(
        {"prefect": {"condition": "service_healthy"}}), "depends_on 'prefect'"),
    "no healthcheck": (lambda s, c: s["mlflow"].pop("healthcheck"), "service mlflow: long-running"),
    "one-shot that is not": (lambda s, c: s["deploy"].update(restart="unless-stopped"),
                             "to complete, but it is no one-shot"),
    "telemetry on": (lambda s, c: s["postgres"]["environment"].pop("DO_NOT_TRACK"), "telemetry not off"),
    "no GPU": (lambda s, c: s["worker-gpu"].pop("deploy"), "reserves no nvidia device"),
    "unknown build target": (lambda s, c: s["worker"]["build"].update(target="cuda"), "no stage"),
}


@pytest.mark.parametrize("case", BROKEN_COMPOSE)
def test_the_compose_checks_see_a_broken_copy(case):
    mutate, expected = BROKEN_COMPOSE[case]
    problems = compose_problems(_broken(mutate))
    assert any(expected in p for p in problems), problems


def test_the_file_checks_see_broken_copies():
    dockerfile = DOCKERFILE.read_text()
    assert any("without --require-hashes" in p
               for p in dockerfile_problems(dockerfile.replace("--require-hashes -r /lock/lock.txt",
                                                               "-r /lock/lock.txt")))
    no_user = dockerfile.replace("USER driftloop", "USER root")
    assert sum("non-root USER" in p for p in dockerfile_problems(no_user)) == 2
    ignore = (ROOT / ".dockerignore").read_text().replace(".venv\n", "")
    assert dockerignore_problems(ignore) == [".dockerignore: add .venv (the images must not carry it)"]
    template = read_env(TEMPLATE.read_text())
    template.pop("DVC_S3_SECRET_KEY")
    assert template_problems(yaml.safe_load(COMPOSE.read_text()), template) == [
        f"{TEMPLATE.name}: add DVC_S3_SECRET_KEY (the compose file uses ${{DVC_S3_SECRET_KEY}})"]
    with pytest.raises(KeyError, match="DVC_S3_SECRET_KEY"):
        load_compose(env=template)
