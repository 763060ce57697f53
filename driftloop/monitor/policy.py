"""policy: should this drift check ask for a retrain? A pure decision over a small state.

Retrain when drift persists for `consecutive_drift` distinct batches and the drifted batches
have at least `min_drift_labels` labelled rows (a retrain before the new regime's labels
arrive could neither learn it nor be tested on it), or when the measured performance of the
champion on labelled predictions falls more than `performance_drop` below its test metric;
never within `cooldown_hours` of the last retrain, never more than `max_per_week` in 7 days,
and never twice for the same window (dedupe key). A new champion resets the streak: its own
training data is the new reference. Every verdict says why.
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftloop.config import Params, PolicyParams
from driftloop.io import write_json
from driftloop.retry import ServiceDown

log = logging.getLogger(__name__)
ACTIONS = ("retrain", "wait", "ok", "insufficient_data", "duplicate", "cooldown", "capped",
           "request_failed")  # the last one: a retrain whose request could not be delivered
_KEEP = 500  # remembered windows; older ones cannot come back in a sane feed


@dataclass(frozen=True)
class Check:
    """What one drift check measured (the policy's input)."""

    key: str                        # the window checked (batch file name): the dedupe key
    status: str                     # drift | no_drift | insufficient_data
    champion: str | None = None     # champion version the check compared against
    perf_key: str | None = None     # the labelled window whose performance was measured
    perf_drop: float | None = None  # champion test metric minus the window's metric
    labelled: Mapping[str, int] = field(default_factory=dict)  # labelled rows per scored window
    est_drop: float | None = None   # champion test metric minus the top of the batch's estimated
                                    # interval (driftloop.monitor.estimate): the smallest drop it allows


@dataclass(frozen=True)
class State:
    champion: str | None = None
    streak: tuple[str, ...] = ()     # consecutive drifted windows since the last reset
    seen: tuple[str, ...] = ()       # windows already counted
    triggered: tuple[str, ...] = ()  # dedupe keys that already caused a retrain
    retrains: tuple[str, ...] = ()   # ISO times of retrains

    @classmethod
    def from_dict(cls, d: dict) -> State:
        return cls(champion=d.get("champion"),
                   **{k: tuple(d.get(k, ())) for k in ("streak", "seen", "triggered", "retrains")})


@dataclass(frozen=True)
class Decision:
    action: str                      # one of ACTIONS
    reason: str
    key: str
    trigger: str | None = None       # drift | performance, when a retrain rule fired
    dedupe_key: str | None = None    # what a retrain is remembered by


def labelled_rows(windows: tuple[str, ...], labelled: Mapping[str, int]) -> int:
    """Labelled rows of `windows` (batch names; a window is named with or without suffix)."""
    return sum(labelled.get(w, labelled.get(Path(w).stem, 0)) for w in windows)


def decide(state: State, check: Check, *, now: datetime, policy: PolicyParams
           ) -> tuple[Decision, State]:
    """The verdict for `check` and the state to keep (pure: no clock, no files)."""
    notes = []
    if check.champion != state.champion:
        if state.champion is not None:
            notes.append(f"champion changed {state.champion} -> {check.champion}: streak reset")
        state = replace(state, champion=check.champion, streak=())
    perf_new = (check.perf_drop is not None and check.perf_key is not None
                and f"perf:{check.perf_key}" not in state.triggered)
    seen = check.key in state.seen
    if not seen:
        state = replace(state, seen=(*state.seen, check.key)[-_KEEP:])
        if check.status == "drift":
            state = replace(state, streak=(*state.streak, check.key))
        elif check.status == "no_drift":
            state = replace(state, streak=())
    n, need = policy.consecutive_drift, policy.min_drift_labels
    persists = (check.status == "drift" and len(state.streak) >= n
                and state.streak[-1] == check.key and check.key not in state.triggered)
    have = labelled_rows(state.streak, check.labelled)
    # a window checked again counts once, but the labels it waited for may have arrived since
    if seen and not perf_new and not (persists and have >= need):
        return Decision("duplicate", f"{check.key} was already checked; a window counts once",
                        check.key), state
    fired = []
    if persists and have >= need:
        fired.append(("drift", check.key, f"drift in {_batches(len(state.streak))} in a row "
                                          f"({', '.join(state.streak)}) >= {n}"
                      + (f", {have} labelled rows of them >= {need}" if need else "")))
    if perf_new and check.perf_drop > policy.performance_drop:
        fired.append(("performance", f"perf:{check.perf_key}",
                      f"{policy.performance_metric} on labelled {check.perf_key} is "
                      f"{check.perf_drop:.4f} below the champion's test figure "
                      f"(> {policy.performance_drop})"))
    if (check.est_drop is not None and policy.estimated_drop is not None
            and check.est_drop > policy.estimated_drop and not seen):
        fired.append(("estimated", f"est:{check.key}",
                      f"estimated {policy.performance_metric} of {check.key} lies at least "
                      f"{check.est_drop:.4f} below the champion's test figure "
                      f"(> policy.estimated_drop {policy.estimated_drop})"))
    muted = [f for f in fired if f[0] == "performance" and f[0] not in policy.triggers]
    fired = [f for f in fired if f[1] not in state.triggered and f[0] in policy.triggers]
    if muted and not fired:
        notes.append(f"{muted[0][2]}: reported only, performance is not in policy.triggers")
    if not fired:
        waiting = persists and have < need and "drift" in policy.triggers
        return _quiet(state, check, n, notes, labels=(have, need) if waiting else None,
                      drift_triggers="drift" in policy.triggers), state
    trigger, dedupe, why = fired[0]
    why = "; ".join([*notes, *(f[2] for f in fired)])
    times = [datetime.fromisoformat(t) for t in state.retrains]
    if times and now - max(times) < timedelta(hours=policy.cooldown_hours):
        left = max(times) + timedelta(hours=policy.cooldown_hours) - now
        return Decision("cooldown", f"{why}; but the last retrain was at {max(times):%Y-%m-%d %H:%M}"
                        f" (cooldown {policy.cooldown_hours:g} h, {left} left)", check.key,
                        trigger, dedupe), state
    week = [t for t in times if now - t < timedelta(days=7)]
    if len(week) >= policy.max_per_week:
        return Decision("capped", f"{why}; but {len(week)} retrains in the last 7 days reach "
                        f"policy.max_per_week={policy.max_per_week}", check.key, trigger,
                        dedupe), state
    state = replace(state, streak=(), triggered=(*state.triggered, *(f[1] for f in fired))[-_KEEP:],
                    retrains=(*state.retrains, now.isoformat())[-_KEEP:])
    return Decision("retrain", why, check.key, trigger, dedupe), state


def _quiet(state: State, check: Check, n: int, notes: list[str],
           labels: tuple[int, int] | None = None, drift_triggers: bool = True) -> Decision:
    if check.status == "insufficient_data":
        action, why = "insufficient_data", "too few rows to judge; the streak is unchanged"
    elif labels is not None:
        action, why = "wait", (f"drift in {_batches(len(state.streak))} in a row, but only "
                               f"{labels[0]} labelled rows of them: a retrain waits for "
                               f"{labels[1]} (policy.min_drift_labels) to learn the new regime "
                               "and be tested on it")
    elif check.status == "drift" and not drift_triggers:
        action, why = "ok", "drift reported only: it is not in policy.triggers"
    elif check.status == "drift":
        action, why = "wait", f"drift in {len(state.streak)} of {n} consecutive batches needed"
    else:
        action, why = "ok", "no drift; streak reset"
    if check.perf_drop is not None:
        why += f"; labelled {check.perf_key}: {-check.perf_drop:+.4f} vs the champion's test figure"
    return Decision(action, "; ".join([*notes, why]), check.key)


def _batches(n: int) -> str:
    return f"{n} batch" if n == 1 else f"{n} batches"


def state_from_log(records: list[dict]) -> State:
    """A state rebuilt from the decisions log, for when the state file is lost or damaged
    (pure). It keeps what stops a second retrain (the retrains' times and dedupe keys, the
    windows seen, the champion) and starts the drift streak afresh, which can only delay a
    retrain, never add one."""
    records = [r for r in records if r.get("action") != "request_failed"]  # never kept
    seen = tuple(dict.fromkeys(r["key"] for r in records if r.get("key")))
    done = [r for r in records if r.get("action") == "retrain"]
    champions = [r["champion_version"] for r in records if r.get("champion_version") is not None]
    return State(champion=str(champions[-1]) if champions else None, seen=seen[-_KEEP:],
                 triggered=tuple(r["dedupe_key"] for r in done if r.get("dedupe_key"))[-_KEEP:],
                 retrains=tuple(r["at"] for r in done if r.get("at"))[-_KEEP:])


def read_decisions(path: Path) -> list[dict]:
    """The decisions log; a damaged line (a write cut short) is skipped with a warning."""
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d is damaged (%r); that decision is skipped", path, n, line[:80])
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def append_decision(path: Path, record: dict) -> None:
    """One JSON line; a last line cut short by a crash is closed first, so it stays one bad
    line instead of spoiling this one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as f:
        f.seek(0, 2)
        if f.tell():
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                log.warning("%s: the last line was cut short; it is closed and kept as is", path)
                f.write(b"\n")
        f.write((json.dumps(record) + "\n").encode())


def load_state(path: Path, decisions: Path | None) -> State:
    """The policy state. Missing while decisions were made, or unreadable, it is rebuilt from
    the `decisions` log (a damaged file is kept aside) and the recovery logged; with no log
    to rebuild from, a damaged file is an error naming it."""
    try:
        return State.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        records = read_decisions(decisions) if decisions else []
        if records:
            log.warning("%s is missing; rebuilt from the %d decisions in %s", path, len(records),
                        decisions)
        return state_from_log(records)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as exc:
        if decisions is None:
            raise ValueError(f"{path}: unreadable policy state ({exc}); move it aside to start "
                             "a fresh streak") from None
        aside = path.with_name(f"{path.name}.damaged-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        path.replace(aside)
        records = read_decisions(decisions)
        log.warning("%s was damaged (%s); moved to %s and rebuilt from the %d decisions in %s "
                    "(retrains and dedupe keys kept, drift streak restarted)", path, exc,
                    aside.name, len(records), decisions)
        return state_from_log(records)


@contextmanager
def locked_state(path: Path, decisions: Path | None = None) -> Iterator[list[State]]:
    """Read the state under an exclusive lock, yield a one-item list to replace it in, and
    write it back atomically: concurrent checks see each other's retrains. An exception in
    the block leaves the file as it was. Given the `decisions` log, a lost or damaged state
    is rebuilt from it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        box = [load_state(path, decisions)]
        yield box
        write_json(path, asdict(box[0]))


def check_from_result(result: dict) -> Check:
    """The policy's input from a drift check's result (driftloop.monitor.drift.run)."""
    perf = result.get("performance") or {}
    return Check(key=result["batch"], status=result["status"],
                 champion=str(result.get("champion_version")),
                 perf_key=perf.get("window"), perf_drop=perf.get("drop"),
                 labelled={w["window"]: w["labelled"] for w in result.get("labelled_windows") or []},
                 est_drop=(result.get("estimated_performance") or {}).get("drop"))


def apply(params: Params, result: dict, now: datetime | None = None,
          request: Callable[[Decision], None] | None = None) -> dict:
    """Decide under the state lock, keep the state, and record the decision with the verdict
    (reports/drift/<batch>/verdict.json) and in the decision log next to the state. On a
    retrain, `request` (the retrain event) runs first; if it raises ServiceDown the state is
    left as it was, so the next check asks again, and the log says why."""
    now = now or datetime.now(UTC)
    log_file = params.path("decisions")
    with locked_state(params.path("policy_state"), log_file) as box:
        decision, state = decide(box[0], check_from_result(result), now=now, policy=params.policy)
        record = {**asdict(decision), "at": now.isoformat(), "champion_version":
                  result.get("champion_version"), "drift_status": result["status"]}
        try:
            if decision.action == "retrain" and request is not None:
                request(decision)
        except ServiceDown as exc:
            record.update(action="request_failed", reason=f"{decision.reason}; but the retrain "
                          f"request was not delivered, so nothing is kept: {exc}")
            _keep(params, result, record, log_file)
            raise
        box[0] = state
        _keep(params, result, record, log_file)
    log.info("policy for %s: %s (%s)", result["batch"], decision.action, decision.reason)
    return record


def _keep(params: Params, result: dict, record: dict, log_file: Path) -> None:
    """The decision in the log and in the batch's verdict (written whole from the check's
    result, so a damaged or missing verdict file is simply replaced)."""
    append_decision(log_file, record)
    verdict = params.report_dir("drift") / Path(result["batch"]).stem / "verdict.json"
    write_json(verdict, {**{k: v for k, v in result.items() if k != "project"}, "policy": record})
