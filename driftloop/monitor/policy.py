"""policy: should this drift check ask for a retrain? A pure decision over a small state.

Retrain when drift persists for `consecutive_drift` distinct batches, or when the measured
performance of the champion on labelled predictions falls more than `performance_drop`
below its test metric; never within `cooldown_hours` of the last retrain, never more than
`max_per_week` in 7 days, and never twice for the same window (dedupe key). A new champion
resets the streak: its own training data is the new reference. Every verdict says why.
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftloop.config import Params, PolicyParams
from driftloop.io import write_json

log = logging.getLogger(__name__)
ACTIONS = ("retrain", "wait", "ok", "insufficient_data", "duplicate", "cooldown", "capped")
_KEEP = 500  # remembered windows; older ones cannot come back in a sane feed


@dataclass(frozen=True)
class Check:
    """What one drift check measured (the policy's input)."""

    key: str                        # the window checked (batch file name): the dedupe key
    status: str                     # drift | no_drift | insufficient_data
    champion: str | None = None     # champion version the check compared against
    perf_key: str | None = None     # the labelled window whose performance was measured
    perf_drop: float | None = None  # champion test metric minus the window's metric


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
    if check.key in state.seen and not perf_new:
        return Decision("duplicate", f"{check.key} was already checked; a window counts once",
                        check.key), state
    if check.key not in state.seen:
        state = replace(state, seen=(*state.seen, check.key)[-_KEEP:])
        if check.status == "drift":
            state = replace(state, streak=(*state.streak, check.key))
        elif check.status == "no_drift":
            state = replace(state, streak=())
    n = policy.consecutive_drift
    fired = []
    if check.status == "drift" and len(state.streak) >= n:
        fired.append(("drift", check.key, f"drift in {len(state.streak)} consecutive batches "
                                          f"({', '.join(state.streak[-n:])}) >= {n}"))
    if perf_new and check.perf_drop > policy.performance_drop:
        fired.append(("performance", f"perf:{check.perf_key}",
                      f"{policy.performance_metric} on labelled {check.perf_key} is "
                      f"{check.perf_drop:.4f} below the champion's test figure "
                      f"(> {policy.performance_drop})"))
    fired = [f for f in fired if f[1] not in state.triggered]
    if not fired:
        return _quiet(state, check, n, notes), state
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


def _quiet(state: State, check: Check, n: int, notes: list[str]) -> Decision:
    if check.status == "insufficient_data":
        action, why = "insufficient_data", "too few rows to judge; the streak is unchanged"
    elif check.status == "drift":
        action, why = "wait", f"drift in {len(state.streak)} of {n} consecutive batches needed"
    else:
        action, why = "ok", "no drift; streak reset"
    if check.perf_drop is not None:
        why += f"; performance {check.perf_drop:+.4f} below the champion's test figure"
    return Decision(action, "; ".join([*notes, why]), check.key)


@contextmanager
def locked_state(path: Path) -> Iterator[list[State]]:
    """Read the state under an exclusive lock, yield a one-item list to replace it in, and
    write it back atomically: concurrent checks see each other's retrains."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = State.from_dict(json.loads(path.read_text())) if path.exists() else State()
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{path}: unreadable policy state ({exc}); move it aside to start "
                             "a fresh streak") from None
        box = [state]
        yield box
        write_json(path, asdict(box[0]))


def check_from_result(result: dict) -> Check:
    """The policy's input from a drift check's result (driftloop.monitor.drift.run)."""
    perf = result.get("performance") or {}
    return Check(key=result["batch"], status=result["status"],
                 champion=str(result.get("champion_version")),
                 perf_key=perf.get("window"), perf_drop=perf.get("drop"))


def apply(params: Params, result: dict, now: datetime | None = None) -> dict:
    """Decide under the state lock, keep the state, and record the decision with the verdict
    (reports/drift/<batch>/verdict.json) and in the decision log next to the state."""
    now = now or datetime.now(UTC)
    path = params.path("policy_state")
    with locked_state(path) as box:
        decision, box[0] = decide(box[0], check_from_result(result), now=now, policy=params.policy)
        record = {**asdict(decision), "at": now.isoformat(), "champion_version":
                  result.get("champion_version"), "drift_status": result["status"]}
        log_file = params.path("decisions")
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "a") as f:
            f.write(json.dumps(record) + "\n")
    verdict = params.report_dir("drift") / Path(result["batch"]).stem / "verdict.json"
    if verdict.exists():
        write_json(verdict, {**json.loads(verdict.read_text()), "policy": record})
    log.info("policy for %s: %s (%s)", result["batch"], decision.action, decision.reason)
    return record
