"""The retrain policy: persistence, performance, cooldown, dedupe, weekly cap, reasons."""

from datetime import UTC, datetime, timedelta

import pytest

from driftloop.monitor.policy import Check, State, decide, locked_state
from tests.helpers import section

T0 = datetime(2026, 3, 2, 6, tzinfo=UTC)


def replay(statuses, policy, *, hours=24.0, state=None):
    """Feed one check per status, `hours` apart; return the actions and the final state."""
    state, actions = state or State(), []
    for i, status in enumerate(statuses):
        d, state = decide(state, Check(f"batch_{i:02d}", status, "1"),
                          now=T0 + timedelta(hours=hours * i), policy=policy)
        actions.append(d.action)
    return actions, state


@pytest.mark.parametrize("n,statuses,expected", [
    (1, ["no_drift", "drift"], ["ok", "retrain"]),
    (2, ["drift", "no_drift", "drift", "drift"], ["wait", "ok", "wait", "retrain"]),
    (3, ["drift", "drift", "insufficient_data", "drift"], ["wait", "wait", "insufficient_data",
                                                           "retrain"]),
    (2, ["no_drift"] * 8, ["ok"] * 8),
])
def test_retrain_when_drift_persists_for_n_distinct_checks(n, statuses, expected):
    actions, _ = replay(statuses, section("policy", consecutive_drift=n, cooldown_hours=0))
    assert actions == expected


def test_eight_weeks_with_drift_from_week_five_retrain_once():
    """Weekly checks, drift from the 5th week; after the retrain the new champion (trained on
    the drifted weeks) is the reference, so the drifted weeks no longer drift against it."""
    policy = section("policy", consecutive_drift=2, cooldown_hours=24, max_per_week=2)
    state, actions = State(), []
    for week in range(8):
        champion = "2" if "retrain" in actions else "1"
        status = "drift" if week >= 4 and champion == "1" else "no_drift"
        d, state = decide(state, Check(f"week_{week}", status, champion),
                          now=T0 + timedelta(weeks=week), policy=policy)
        actions.append(d.action)
    assert actions == ["ok"] * 4 + ["wait", "retrain", "ok", "ok"]
    assert len(state.retrains) == 1 and state.champion == "2"


def test_persisting_drift_against_an_unchanged_champion_is_throttled():
    policy = section("policy", consecutive_drift=2, cooldown_hours=24 * 21, max_per_week=2)
    actions, state = replay(["no_drift"] * 4 + ["drift"] * 4, policy, hours=24 * 7)
    assert actions == ["ok"] * 4 + ["wait", "retrain", "wait", "cooldown"]
    assert len(state.retrains) == 1


def test_five_drift_checks_within_a_minute_retrain_once():
    actions, state = replay(["drift"] * 5, section("policy", consecutive_drift=1), hours=0.2 / 60)
    assert actions == ["retrain"] + ["cooldown"] * 4
    assert state.triggered == ("batch_00",)


def test_the_same_window_never_counts_twice():
    policy = section("policy", consecutive_drift=2, cooldown_hours=0)
    state, seen = State(), []
    for _ in range(3):  # a daily check that keeps finding the same newest batch
        d, state = decide(state, Check("batch_a", "drift", "1"), now=T0, policy=policy)
        seen.append(d.action)
    assert seen == ["wait", "duplicate", "duplicate"] and state.streak == ("batch_a",)
    d, state = decide(state, Check("batch_b", "drift", "1"), now=T0, policy=policy)
    assert d.action == "retrain" and "batch_a, batch_b" in d.reason
    d, _ = decide(state, Check("batch_b", "drift", "1"), now=T0 + timedelta(days=30),
                  policy=policy)
    assert d.action == "duplicate"


def test_weekly_cap():
    policy = section("policy", consecutive_drift=1, cooldown_hours=1, max_per_week=2)
    actions, _ = replay(["drift"] * 5, policy, hours=12)
    assert actions == ["retrain", "retrain", "capped", "capped", "capped"]
    actions, _ = replay(["drift"] * 16, policy, hours=24)
    retrain_days = [i for i, a in enumerate(actions) if a == "retrain"]
    assert retrain_days == [0, 1, 7, 8, 14, 15]  # never a third within 7 days


def test_cooldown_keeps_the_streak_so_persisting_drift_retrains_after_it():
    policy = section("policy", consecutive_drift=1, cooldown_hours=48, max_per_week=5)
    actions, _ = replay(["drift"] * 4, policy, hours=24)
    assert actions == ["retrain", "cooldown", "retrain", "cooldown"]


@pytest.mark.parametrize("drop,action", [(0.08, "retrain"), (0.05, "ok"), (0.01, "ok"),
                                         (-0.02, "ok")])
def test_performance_drop_beyond_x_retrains(drop, action):
    policy = section("policy", performance_drop=0.05)
    d, _ = decide(State(), Check("b1", "no_drift", "1", perf_key="b0", perf_drop=drop), now=T0,
                  policy=policy)
    assert d.action == action
    if action == "retrain":
        assert d.trigger == "performance" and d.dedupe_key == "perf:b0" and "b0" in d.reason


def test_a_labelled_window_triggers_once_even_when_checked_again():
    policy = section("policy", performance_drop=0.05, cooldown_hours=0)
    d1, s = decide(State(), Check("b1", "no_drift", "1", "b0", 0.1), now=T0, policy=policy)
    d2, s = decide(s, Check("b2", "no_drift", "1", "b0", 0.1), now=T0, policy=policy)
    d3, s = decide(s, Check("b3", "no_drift", "1", "b1", 0.1), now=T0, policy=policy)
    assert [d1.action, d2.action, d3.action] == ["retrain", "ok", "retrain"]


def test_a_new_champion_resets_the_streak():
    policy = section("policy", consecutive_drift=2)
    _, s = decide(State(), Check("b1", "drift", "1"), now=T0, policy=policy)
    d, s = decide(s, Check("b2", "drift", "2"), now=T0, policy=policy)
    assert d.action == "wait" and "champion changed 1 -> 2" in d.reason and s.streak == ("b2",)


def test_every_verdict_says_why():
    policy = section("policy", consecutive_drift=2, cooldown_hours=0)
    _, state = replay(["drift"], policy)
    for status in ("drift", "no_drift", "insufficient_data"):
        d, _ = decide(state, Check(f"x-{status}", status, "1"), now=T0, policy=policy)
        assert d.reason and d.key == f"x-{status}"


def test_state_round_trips_through_the_locked_file(tmp_path):
    path = tmp_path / "monitoring" / "state.json"
    with locked_state(path) as box:
        assert box[0] == State()
        _, box[0] = decide(box[0], Check("b1", "drift", "3"), now=T0, policy=section("policy"))
    with locked_state(path) as box:
        assert box[0].triggered == ("b1",) and box[0].champion == "3"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="state.json.*move it aside"):
        with locked_state(path):
            pass
