"""`make stack` / `make stack-down`: the loop on a production-shaped stack on this machine.

The same topology a team runs, as processes on 127.0.0.1 with free ports, all state in one
folder (`.stack/`):

- PostgreSQL, one cluster (`postgres/`): database `prefect` (role prefect) and database
  `mlflow` (role mlflow), password logins over TCP. Postgres refuses to run as root, so as
  root the server runs as an unprivileged user (`postgres`, else `nobody`);
- SeaweedFS (`weed mini`, `s3/`), an S3-compatible server with one access key and one bucket:
  MLflow's artifacts under `mlflow/`, the DVC remote under `dvc/`;
- the Prefect server on Postgres, the MLflow tracking server on Postgres serving the bucket's
  artifacts itself (`mlflow-artifacts:/`), so workers hold no bucket keys;
- the deployments of prefect.yaml and a process worker, for a copy of the project
  (`project/`) whose DVC remote (`.dvc/config.local`) is the bucket.

`up` starts from a clean slate and plays the demo's story through the stack; `down` stops only
the processes `up` recorded (pid and start time). Ports and keys are in `stack.json`.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from driftloop.io import write_json, write_text
from driftloop.services import (
    BIN,
    MLFLOW_START_S,
    PREFECT_CLI_S,
    Stack,
    StopReport,
    free_port,
    healthy,
    offline_env,
    wait_healthy,
)

STATE = ".stack"
BUCKET = "driftloop"
REGION = "us-east-1"
DVC_REMOTE = "stack"
DATABASES = ("prefect", "mlflow")  # one database per service, each owned by a role of its name
PG_USERS = ("postgres", "nobody")  # who runs Postgres when we are root, first that exists
PG_EXTENSIONS = ("pg_trgm",)       # what the Prefect server's migrations create
START_S = 60                       # Postgres or the S3 store answering after start
WEED_PORTS = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc",
              "s3_grpc", "admin", "admin_grpc")


def postgres_bins() -> list[Path]:
    """Folders with initdb and postgres: `pg_config --bindir`, then Debian's versioned folders
    (newest first). The PostgreSQL wheels on the package index ship no contrib modules, so no
    Prefect server can run on them (its migrations create pg_trgm)."""
    found = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        found += [Path(out.stdout.strip())] if out.returncode == 0 else []
    found += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return list(dict.fromkeys(f for f in found if (f / "initdb").exists() and (f / "postgres").exists()))


def has_extension(bindir: Path, name: str) -> bool:
    out = subprocess.run([str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True)
    return out.returncode == 0 and (Path(out.stdout.strip()) / "extension" / f"{name}.control").exists()


def postgres_bin() -> Path | None:
    """The first server of postgres_bins() with the extensions the Prefect server's migrations
    create."""
    return next((b for b in postgres_bins() if all(has_extension(b, e) for e in PG_EXTENSIONS)),
                None)


def missing_parts() -> str | None:
    """Why the stack cannot start on this machine (None when it can)."""
    if postgres_bin() is None:
        seen = ", ".join(str(b.parent) for b in postgres_bins()) or "none"
        return (f"no PostgreSQL server with the {'/'.join(PG_EXTENSIONS)} extension the Prefect "
                f"server needs (servers found: {seen}): install Debian's postgresql (with "
                "postgresql-contrib: `apt-get install postgresql postgresql-contrib`), whose "
                "`pg_config --bindir` is then used")
    if weed_bin() is None:
        return "no SeaweedFS `weed` binary next to this Python or on PATH: `make install`"
    if os.geteuid() == 0 and pg_user() is None:
        return f"running as root and none of the users {PG_USERS} exists to run Postgres as"
    return None


def weed_bin() -> Path | None:
    found = BIN / "weed" if (BIN / "weed").exists() else shutil.which("weed")
    return Path(found) if found else None


def pg_user() -> pwd.struct_passwd | None:
    """Who runs Postgres: this user, or, as root, the first of PG_USERS that exists."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    for name in PG_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


def blocked_folder(path: Path, uid: int, gid: int) -> Path | None:
    """The first existing folder above `path` that user `uid` (group `gid`) may not enter."""
    for folder in reversed(path.resolve().parents):
        st = folder.stat()
        bit = 0o100 if st.st_uid == uid else 0o010 if st.st_gid == gid else 0o001
        if uid != 0 and not st.st_mode & bit:
            return folder
    return None


@dataclass(kw_only=True)
class ServerStack(Stack):
    """The services of one production-shaped stack: `state` holds their data, logs and pid
    files; `root` is the project the deployments run."""

    state: Path
    ports: dict[str, int] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    SERVICES = ("worker", "mlflow", "prefect-server", "s3", "postgres")

    @classmethod
    def create(cls, root: Path, state: Path) -> ServerStack:
        """A new stack on free ports with new passwords, saved in `state`/stack.json."""
        names = ("postgres", "s3", *WEED_PORTS)
        keys = {"s3_access": "driftloop", "s3_secret": secrets.token_hex(16),
                **{f"pg_{u}": secrets.token_hex(12) for u in ("postgres", *DATABASES)}}
        stack = cls(root=root.resolve(), state=state.resolve(), prefect_port=free_port(),
                    mlflow_port=free_port(), ports={n: free_port() for n in names}, keys=keys)
        stack.state.mkdir(parents=True, exist_ok=True)
        write_json(stack.state / "stack.json", stack.describe(with_keys=True))
        (stack.state / "stack.json").chmod(0o600)
        return stack

    @classmethod
    def load(cls, state: Path) -> ServerStack | None:
        try:
            d = json.loads((state / "stack.json").read_text())
        except (OSError, ValueError):
            return None
        return cls(root=Path(d["project"]), state=state.resolve(), prefect_port=d["prefect_port"],
                   mlflow_port=d["mlflow_port"], ports=d["ports"], keys=d["keys"])

    def describe(self, with_keys: bool = False) -> dict:
        d = {"project": str(self.root), "prefect_port": self.prefect_port,
             "mlflow_port": self.mlflow_port, "ports": self.ports, "bucket": BUCKET,
             "s3_endpoint": self.s3_endpoint, "prefect_ui": f"http://127.0.0.1:{self.prefect_port}",
             "mlflow_ui": self.mlflow_url}
        return {**d, "keys": self.keys} if with_keys else d

    # ------------------------------------------------------------- where things are
    @property
    def run_dir(self) -> Path:
        return self.state / "run"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def db_url(self, db: str, driver: str = "postgresql") -> str:
        """SQLAlchemy URL of database `db` as its own role (`postgres`: the superuser)."""
        user = "postgres" if db == "postgres" else db
        return f"{driver}://{user}:{self.keys[f'pg_{user}']}@127.0.0.1:{self.ports['postgres']}/{db}"

    def env(self) -> dict[str, str]:
        """What the worker, its flow runs and the prefect CLI see: no database password and no
        bucket key (MLflow's artifacts pass through its server; DVC has its key in the
        project's .dvc/config.local)."""
        return offline_env(PREFECT_HOME=str(self.state / "prefect"),
                           PREFECT_API_URL=self.prefect_api, DRIFTLOOP_ROOT=str(self.root),
                           MLFLOW_TRACKING_URI=self.mlflow_url)

    def s3_env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.keys["s3_access"],
                "AWS_SECRET_ACCESS_KEY": self.keys["s3_secret"], "AWS_DEFAULT_REGION": REGION}

    def s3(self):
        """A boto3 client of the bucket's store, with the stack's key."""
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name=REGION,
                            aws_access_key_id=self.keys["s3_access"],
                            aws_secret_access_key=self.keys["s3_secret"])

    # ------------------------------------------------------------- services
    def start_postgres(self) -> None:
        """initdb once, start the server, create each service's role and database."""
        user, pg = pg_user(), postgres_bin()
        if (why := missing_parts()) is not None:
            raise RuntimeError(why)
        home = self.state / "postgres"
        data, sock = home / "data", home / "socket"
        if os.geteuid() == 0 and (bad := blocked_folder(home, user.pw_uid, user.pw_gid)):
            raise RuntimeError(
                f"{bad} may not be entered by user {user.pw_name!r}, who runs Postgres (it refuses "
                f"to run as root): put the stack folder elsewhere or `chmod o+x {bad}`")
        as_user = {} if os.geteuid() != 0 else {"user": user.pw_uid, "group": user.pw_gid,
                                                 "extra_groups": []}
        pg_env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "TZ": "UTC"}
        sock.mkdir(parents=True, exist_ok=True)
        if not (data / "PG_VERSION").exists():
            data.mkdir(parents=True, exist_ok=True)
            pwfile = home / "pwfile"
            write_text(pwfile, self.keys["pg_postgres"] + "\n")
            for p in (home, data, sock, pwfile):
                os.chown(p, user.pw_uid, user.pw_gid)
            data.chmod(0o700)
            pwfile.chmod(0o600)
            out = subprocess.run([str(pg / "initdb"), "-D", str(data), "-U", "postgres",
                                  "--auth-local=trust", "--auth-host=scram-sha-256",
                                  f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale"],
                                 capture_output=True, text=True, env=pg_env, **as_user)
            pwfile.unlink()
            if out.returncode != 0:
                raise RuntimeError(f"initdb of {data} failed ({out.returncode}): {out.stderr[-2000:]}")
        proc = self._start("postgres", [
            str(pg / "postgres"), "-D", str(data), "-p", str(self.ports["postgres"]),
            "-k", str(sock), "-c", "listen_addresses=127.0.0.1"], env=pg_env, cwd=home, **as_user)
        import psycopg2

        self._until(self._create_databases, "postgres", proc, psycopg2.OperationalError)

    def _create_databases(self) -> None:
        import psycopg2

        conn = psycopg2.connect(self.db_url("postgres"), connect_timeout=3)
        conn.autocommit = True  # CREATE DATABASE runs outside a transaction
        with conn.cursor() as cur:
            for db in DATABASES:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (db,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE ROLE "{db}" LOGIN PASSWORD %s', (self.keys[f"pg_{db}"],))
                    cur.execute(f'CREATE DATABASE "{db}" OWNER "{db}"')
        conn.close()

    def start_store(self) -> None:
        """SeaweedFS with one identity (the stack's key) and the bucket."""
        home = self.state / "s3"
        (home / "data").mkdir(parents=True, exist_ok=True)
        identity = {"name": "driftloop", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    "credentials": [{"accessKey": self.keys["s3_access"],
                                     "secretKey": self.keys["s3_secret"]}]}
        write_json(home / "identities.json", {"identities": [identity]})
        (home / "identities.json").chmod(0o600)
        p = self.ports
        flags = {"dir": home / "data", "ip": "127.0.0.1", "ip.bind": "127.0.0.1",
                 "s3.port": p["s3"], "s3.config": home / "identities.json", "s3.port.iceberg": 0,
                 "s3.port.lance": 0, "webdav": "false", "admin.ui": "false",
                 "filer.localSocket": home / "filer.sock", "s3.localSocket": home / "s3.sock",
                 **{n.replace("_grpc", ".port.grpc") if n.endswith("_grpc") else f"{n}.port": p[n]
                    for n in WEED_PORTS}}
        proc = self._start("s3", [str(weed_bin()), "mini", *(f"-{k}={v}" for k, v in flags.items())],
                           cwd=home)
        from botocore.exceptions import BotoCoreError, ClientError

        self._until(self._create_bucket, "s3", proc, (BotoCoreError, ClientError))

    def _create_bucket(self) -> None:
        s3 = self.s3()
        if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(Bucket=BUCKET)

    def _until(self, ready, name: str, proc: subprocess.Popen, not_yet) -> None:
        """Call `ready()` while it raises `not_yet` (the server is not up yet); fail with the
        log's tail when the process dies or START_S pass."""
        deadline, last = time.monotonic() + START_S, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                return ready()
            except not_yet as exc:
                last = exc
                time.sleep(0.5)
        log = self.log(name)
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"{name} did not come up within {START_S}s (last error: {last}); "
                           f"{log}:\n{tail}")

    def start_prefect(self) -> None:
        super().start_prefect(
            PREFECT_API_DATABASE_CONNECTION_URL=self.db_url("prefect", "postgresql+asyncpg"))

    def start_mlflow(self) -> None:
        """The tracking server holds the bucket's key and serves artifacts to clients."""
        if (proc := self._launch_mlflow()) is not None:
            wait_healthy(f"{self.mlflow_url}/health", MLFLOW_START_S, proc, self.log("mlflow"))

    def _launch_mlflow(self) -> subprocess.Popen | None:
        if healthy(f"{self.mlflow_url}/health"):
            return None
        env = {**self.env(), **self.s3_env(), "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
               "MLFLOW_BACKEND_STORE_URI": self.db_url("mlflow")}  # not in argv: it has a password
        return self._start("mlflow", [
            str(BIN / "mlflow"), "server", "--artifacts-destination", f"s3://{BUCKET}/mlflow",
            "--serve-artifacts", "--host", "127.0.0.1", "--port", str(self.mlflow_port),
            "--workers", "1"], env=env)

    def configure_dvc(self, project: Path | None = None) -> None:
        """The bucket as the default DVC remote of `project` (default: the stack's), in its
        .dvc/config.local: the committed .dvc/config stays as it is."""
        project = project or self.root
        settings = {"endpointurl": self.s3_endpoint, "access_key_id": self.keys["s3_access"],
                    "secret_access_key": self.keys["s3_secret"], "region": REGION}
        cmds = [["remote", "add", "--local", "--force", "--default", DVC_REMOTE,
                 f"s3://{BUCKET}/dvc"]]
        cmds += [["remote", "modify", "--local", DVC_REMOTE, k, v] for k, v in settings.items()]
        for cmd in cmds:
            out = subprocess.run([str(BIN / "dvc"), *cmd], cwd=project, env=offline_env(),
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"`dvc {' '.join(cmd[:4])}` in {project} failed: {out.stderr}")

    def up(self) -> None:
        """Every service, the DVC remote, the deployments and a worker."""
        self.start_postgres()
        self.start_store()
        mlflow = self._launch_mlflow()  # its migrations run while Prefect starts and deploys
        self.start_prefect()
        self.configure_dvc()
        self.deploy()
        self.start_worker()
        if mlflow is not None:
            wait_healthy(f"{self.mlflow_url}/health", MLFLOW_START_S, mlflow, self.log("mlflow"))

    def stop(self) -> StopReport:
        report = super().stop()
        if "s3" in report.stopped:  # weed leaves its gRPC sockets in /tmp, named by port
            for name in WEED_PORTS:
                if name.endswith("_grpc"):
                    kind = name.removesuffix("_grpc")
                    sock = f"seaweedfs-{kind}-grpc-{self.ports[name]}.sock"
                    Path(tempfile.gettempdir(), sock).unlink(missing_ok=True)
        return report

    def deploy_on_pool(self, kind: str, image: str, workdir: str = "/workspace") -> str:
        """The train flow as `train/weekly-<kind>` on a work pool `driftloop-<kind>` of type
        `kind` (docker, kubernetes): a worker of that type runs it in `image`, whose project
        folder is `workdir` (docker/Dockerfile: /workspace). Returns the deployment's name. Running
        it needs that worker and its engine; creating it needs only the server."""
        pool, name = f"driftloop-{kind}", f"weekly-{kind}"
        self.prefect("work-pool", "create", pool, "--type", kind, "--overwrite", quiet=True)
        cmd = [str(BIN / "prefect"), "--no-prompt", "deploy", "flows/train.py:train", "--name",
               name, "--pool", pool, "--job-variable", f"image={image}"]
        out = subprocess.run(cmd, cwd=self.root, env={**self.env(), "DRIFTLOOP_ROOT": workdir},
                             capture_output=True, text=True, timeout=PREFECT_CLI_S)
        if out.returncode != 0:
            raise RuntimeError(f"`prefect deploy` of train/{name} on pool {pool} failed:\n"
                               f"{out.stdout[-3000:]}{out.stderr[-3000:]}")
        return f"train/{name}"


# ----------------------------------------------------------------- make stack / stack-down
def copy_project_files(src: Path, dest: Path) -> None:
    """Copy the project's files at `src` (tracked and new, not ignored) to `dest`, without
    data, models, reports or dvc.lock: the code and params a fresh run starts from."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=src, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for rel in files:
        if (src / rel).is_file() and not rel.startswith(("data/", "reports/", "models/")) \
                and rel != "dvc.lock":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dest / rel)


def copy_project(src: Path, dest: Path, tracking_uri: str) -> Path:
    """The project's files (tracked and new, not ignored; no data, models, reports or
    dvc.lock) in a git repository of their own at `dest`, its MLflow pointing at the stack."""
    import yaml

    copy_project_files(src, dest)
    (dest / "data/landing").mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["mlflow"] = {"tracking_uri": tracking_uri, "ui_url": tracking_uri}
    write_text(dest / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=driftloop", "-c", "user.email=driftloop@localhost"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "copy of the project"]):
        subprocess.run([*git, *cmd], cwd=dest, check=True, capture_output=True)
    return dest


def stop(state: Path) -> list[str]:
    """Stop what the stack in `state` recorded; lines saying what was not stopped."""
    stack = ServerStack.load(state)
    if stack is None:
        print(f"stopped: nothing (no stack recorded in {state})")
        return []
    report = stack.stop()
    print("stopped: " + (", ".join(report.stopped) if report.stopped else "nothing was running"))
    for line in report.skipped:
        print(f"not stopped: {line}")
    return report.skipped


def up(repo: Path) -> None:
    from driftloop.config import load_params
    from driftloop.demo import DEMO_ENV, MAX_LIVE_WEEKS, play, say, summary

    if why := missing_parts():
        raise SystemExit(f"make stack: {why}")
    state = repo / STATE
    say(f"stopping an earlier stack and clearing {state}")
    if skipped := stop(state):
        raise SystemExit(f"{state} is kept: an earlier stack's processes could not be checked "
                         f"({'; '.join(skipped)}); stop them, then run `make stack` again")
    shutil.rmtree(state, ignore_errors=True)
    stack = ServerStack.create(state / "project", state)
    copy_project(repo, stack.root, stack.mlflow_url)
    os.environ.update(stack.env())
    os.environ.update(DEMO_ENV, DRIFTLOOP_PARAMS=str(stack.root / "params.yaml"))
    say(f"starting Postgres ({postgres_bin()}) on 127.0.0.1:{stack.ports['postgres']}, "
        f"SeaweedFS S3 on {stack.s3_endpoint}, Prefect on {stack.prefect_api}, MLflow on "
        f"{stack.mlflow_url}; deploying prefect.yaml and starting a process worker")
    stack.up()
    story = play(load_params(stack.root / "params.yaml"), stack)
    if story["retrained_at"] is None:
        raise SystemExit(f"no retrain was asked for in {MAX_LIVE_WEEKS} live weeks")
    summary(stack.root, stack, stop="make stack-down")
    print(where(stack))


def where(stack: ServerStack) -> str:
    pages = stack.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    objects = sum(page.get("KeyCount", 0) for page in pages)
    return "\n".join([
        f"Postgres:   127.0.0.1:{stack.ports['postgres']}, databases {', '.join(DATABASES)} "
        f"(data {stack.state / 'postgres/data'})",
        f"S3 store:   {stack.s3_endpoint}, bucket s3://{BUCKET} ({objects} objects): MLflow "
        "artifacts under mlflow/, the DVC remote under dvc/ (data "
        f"{stack.state / 's3/data'}); filer UI http://127.0.0.1:{stack.ports['filer']}",
        f"Project:    {stack.root} (the deployments run it)",
        f"Ports, passwords and keys: {stack.state / 'stack.json'}; logs: {stack.run_dir}/*.log",
    ])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    repo = Path(__file__).resolve().parents[1]
    cmd = argv[0] if argv else "up"
    if cmd not in ("up", "down"):
        print(f"unknown command {cmd!r}; use up or down", file=sys.stderr)
        sys.exit(2)
    t0 = time.monotonic()
    if cmd == "down":
        sys.exit(1 if stop(repo / STATE) else 0)
    from driftloop.runs import WaitFailed

    try:
        up(repo)
    except (WaitFailed, TimeoutError, RuntimeError) as exc:
        print(f"\nstack stopped: {exc}\n(the services keep running: `make stack-down` stops "
              "them)", file=sys.stderr)
        sys.exit(1)
    print(f"(make stack took {time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
