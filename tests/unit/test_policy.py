"""The retrain policy: persistence, waiting for labels, performance, cooldown, dedupe, weekly
cap, reasons."""

from datetime import UTC, datetime, timedelta

import pytest

from driftloop.monitor.policy import Check, State, decide, locked_state
from tests.helpers import section

T0 = datetime(2026, 3, 2, 6, tzinfo=UTC)


def rules(**changes):
    """The demo's policy section with `changes`; drift retrains do not wait for labels unless
    a test says so (those tests are about persistence, throttling and dedupe)."""
    return section("policy", **{"min_drift_labels": 0, **changes})


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
    actions, _ = replay(statuses, rules(consecutive_drift=n, cooldown_hours=0))
    assert actions == expected


def test_eight_weeks_with_drift_from_week_five_retrain_once():
    """Weekly checks, drift from the 5th week; after the retrain the new champion (trained on
    the drifted weeks) is the reference, so the drifted weeks no longer drift against it."""
    policy = rules(consecutive_drift=2, cooldown_hours=24, max_per_week=2)
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
    policy = rules(consecutive_drift=2, cooldown_hours=24 * 21, max_per_week=2)
    actions, state = replay(["no_drift"] * 4 + ["drift"] * 4, policy, hours=24 * 7)
    assert actions == ["ok"] * 4 + ["wait", "retrain", "wait", "cooldown"]
    assert len(state.retrains) == 1


def test_five_drift_checks_within_a_minute_retrain_once():
    actions, state = replay(["drift"] * 5, rules(consecutive_drift=1), hours=0.2 / 60)
    assert actions == ["retrain"] + ["cooldown"] * 4
    assert state.triggered == ("batch_00",)


def test_the_same_window_never_counts_twice():
    policy = rules(consecutive_drift=2, cooldown_hours=0)
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
    policy = rules(consecutive_drift=1, cooldown_hours=1, max_per_week=2)
    actions, _ = replay(["drift"] * 5, policy, hours=12)
    assert actions == ["retrain", "retrain", "capped", "capped", "capped"]
    actions, _ = replay(["drift"] * 16, policy, hours=24)
    retrain_days = [i for i, a in enumerate(actions) if a == "retrain"]
    assert retrain_days == [0, 1, 7, 8, 14, 15]  # never a third within 7 days


def test_cooldown_keeps_the_streak_so_persisting_drift_retrains_after_it():
    policy = rules(consecutive_drift=1, cooldown_hours=48, max_per_week=5)
    actions, _ = replay(["drift"] * 4, policy, hours=24)
    assert actions == ["retrain", "cooldown", "retrain", "cooldown"]


@pytest.mark.parametrize("drop,action", [(0.08, "retrain"), (0.05, "ok"), (0.01, "ok"),
                                         (-0.02, "ok")])
def test_performance_drop_beyond_x_retrains(drop, action):
    policy = rules(performance_drop=0.05)
    d, _ = decide(State(), Check("b1", "no_drift", "1", perf_key="b0", perf_drop=drop), now=T0,
                  policy=policy)
    assert d.action == action
    if action == "retrain":
        assert d.trigger == "performance" and d.dedupe_key == "perf:b0" and "b0" in d.reason


def test_a_labelled_window_triggers_once_even_when_checked_again():
    policy = rules(performance_drop=0.05, cooldown_hours=0)
    d1, s = decide(State(), Check("b1", "no_drift", "1", "b0", 0.1), now=T0, policy=policy)
    d2, s = decide(s, Check("b2", "no_drift", "1", "b0", 0.1), now=T0, policy=policy)
    d3, s = decide(s, Check("b3", "no_drift", "1", "b1", 0.1), now=T0, policy=policy)
    assert [d1.action, d2.action, d3.action] == ["retrain", "ok", "retrain"]


def test_a_new_champion_resets_the_streak():
    policy = rules(consecutive_drift=2)
    _, s = decide(State(), Check("b1", "drift", "1"), now=T0, policy=policy)
    d, s = decide(s, Check("b2", "drift", "2"), now=T0, policy=policy)
    assert d.action == "wait" and "champion changed 1 -> 2" in d.reason and s.streak == ("b2",)


def test_every_verdict_says_why():
    policy = rules(consecutive_drift=2, cooldown_hours=0)
    _, state = replay(["drift"], policy)
    for status in ("drift", "no_drift", "insufficient_data"):
        d, _ = decide(state, Check(f"x-{status}", status, "1"), now=T0, policy=policy)
        assert d.reason and d.key == f"x-{status}"


def test_state_round_trips_through_the_locked_file(tmp_path):
    path = tmp_path / "monitoring" / "state.json"
    with locked_state(path) as box:
        assert box[0] == State()
        _, box[0] = decide(box[0], Check("b1", "drift", "3"), now=T0, policy=rules())
    with locked_state(path) as box:
        assert box[0].triggered == ("b1",) and box[0].champion == "3"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="state.json.*move it aside"):
        with locked_state(path):
            pass


def weekly(week: int, status: str, champion: str, labelled_weeks: range, rows: int = 1500) -> Check:
    """A weekly check whose earlier weeks `labelled_weeks` have labels on `rows` rows each."""
    return Check(f"batch_{week:02d}.parquet", status, champion,
                 labelled={f"batch_{w:02d}": rows for w in labelled_weeks})


def test_a_drift_retrain_waits_until_the_drifted_weeks_are_labelled():
    """The demo's timeline: drift from week 9, labels a week late, 3 weeks of labels needed.
    The labels of week 8 (before the drift) do not count: they teach nothing new."""
    policy = section("policy", consecutive_drift=2, min_drift_labels=4500, cooldown_hours=24)
    state, decisions = State(), []
    for week in range(8, 14):
        champion = "3" if any(d.action == "retrain" for d in decisions) else "1"
        status = "drift" if week >= 9 and champion == "1" else "no_drift"
        d, state = decide(state, weekly(week, status, champion, range(8, week)),
                          now=T0 + timedelta(weeks=week), policy=policy)
        decisions.append(d)
    assert [d.action for d in decisions] == ["ok", "wait", "wait", "wait", "retrain", "ok"]
    assert "drift in 1 of 2" in decisions[1].reason
    assert "only 1500 labelled rows" in decisions[2].reason and "4500" in decisions[2].reason
    assert "only 3000 labelled rows" in decisions[3].reason
    assert decisions[4].trigger == "drift" and "4500 labelled rows of them >= 4500" in decisions[4].reason
    assert "batch_09.parquet, batch_10.parquet, batch_11.parquet, batch_12.parquet" in decisions[4].reason
    assert len(state.retrains) == 1 and state.champion == "3"


def test_a_batch_checked_again_retrains_once_its_labels_have_arrived():
    policy = section("policy", consecutive_drift=1, min_drift_labels=1000, cooldown_hours=0)
    state, actions = State(), []
    for labelled in (0, 400, 1000, 1500):  # daily checks of the same newest batch
        d, state = decide(state, Check("b7", "drift", "1", labelled={"b7": labelled}), now=T0,
                          policy=policy)
        actions.append(d.action)
    assert actions == ["wait", "duplicate", "retrain", "duplicate"]
    assert state.streak == () and state.triggered == ("b7",)


def test_without_a_wait_for_labels_drift_alone_retrains():
    d, _ = decide(State(), Check("b1", "drift", "1"), now=T0,
                  policy=section("policy", consecutive_drift=1, min_drift_labels=0))
    assert d.action == "retrain" and "labelled" not in d.reason


def test_with_performance_as_the_only_trigger_drift_is_reported_but_never_retrains():
    """Data that drifts every period (a seasonal mix): only the labelled metric asks."""
    policy = rules(triggers=["performance"])
    actions, _ = replay(["drift"] * 6, policy, hours=24 * 30)
    assert actions == ["ok"] * 6
    d, _ = decide(State(), Check("b1", "drift", "1", perf_key="b0", perf_drop=0.08), now=T0,
                  policy=policy)
    assert d.action == "retrain" and d.trigger == "performance"
    d, _ = decide(State(), Check("b1", "drift", "1"), now=T0, policy=policy)
    assert "not in policy.triggers" in d.reason


def test_with_drift_as_the_only_trigger_a_performance_drop_is_reported_only():
    policy = rules(triggers=["drift"], consecutive_drift=2)
    d, _ = decide(State(), Check("b1", "no_drift", "1", perf_key="b0", perf_drop=0.3), now=T0,
                  policy=policy)
    assert d.action == "ok" and "performance is not in policy.triggers" in d.reason


@pytest.mark.parametrize("setting,est_drop,action", [
    (None, 0.2, "ok"),       # off by default: an estimate alone never retrains
    (0.05, 0.2, "retrain"),  # the whole interval lies more than 0.05 below the test figure
    (0.05, 0.03, "ok"),      # the interval reaches within 0.05 of it
])
def test_an_estimated_drop_retrains_only_when_switched_on(setting, est_drop, action):
    policy = rules(triggers=["drift", "performance", "estimated"], estimated_drop=setting)
    d, _ = decide(State(), Check("b1", "no_drift", "1", est_drop=est_drop), now=T0, policy=policy)
    assert d.action == action
    if action == "retrain":
        assert d.trigger == "estimated" and d.dedupe_key == "est:b1" and "estimated auc" in d.reason


def test_an_estimated_drop_is_no_trigger_unless_listed():
    policy = rules(triggers=["drift", "performance"], estimated_drop=0.05)
    d, _ = decide(State(), Check("b1", "no_drift", "1", est_drop=0.2), now=T0, policy=policy)
    assert d.action == "ok"
