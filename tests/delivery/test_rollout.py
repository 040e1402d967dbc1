"""The rollout state machine on real stores (SQLite, PostgreSQL) and the in-memory front."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from modelyard.config import DeliverySettings
from modelyard.delivery import (
    RolloutController,
    RolloutRequest,
    RolloutStore,
    parse_steps,
)
from modelyard.errors import ConflictError, InvalidInputError, NotFoundError
from modelyard.registry import Registry
from modelyard.testing.delivery import Behaviour, InMemoryFront, ManualClock

RPS = 2000


def _setup(
    registry: Registry,
    behaviours: dict[int, Behaviour] | None = None,
    **settings: Any,
) -> tuple[RolloutController, InMemoryFront, ManualClock]:
    values: dict[str, Any] = {
        "interval_s": 5.0,
        "deadline_s": 60.0,
        "load_test_s": 1.0,
        "load_test_rps": 500.0,
        "min_samples": 50,
        "max_error_rate": 0.02,
    }
    values.update(settings)
    clock = ManualClock()
    front = InMemoryFront(1, behaviours)
    store = RolloutStore(registry.metadata_store, actor="tester", clock=clock)
    ctl = RolloutController(
        store, front, registry, "churn", DeliverySettings(**values), clock=clock
    )
    return ctl, front, clock


def _drive(
    ctl: RolloutController,
    front: InMemoryFront,
    clock: ManualClock,
    *,
    until: set[str] | None = None,
    seconds: int = 600,
) -> str:
    """Send RPS requests a second and tick once a second, until a terminal state (or ``until``)."""
    until = until or {"promoted", "rolled_back"}
    state = ""
    for _ in range(seconds):
        front.send(RPS // 10)  # a tenth of the traffic: routing is what is tested, not volume
        clock.advance(1.0)
        rollout = asyncio.run(ctl.tick())
        assert rollout is not None
        state = rollout.state
        if state in until:
            return state
    return state


def _start(ctl: RolloutController, candidate: int = 2, **kwargs: Any) -> Any:
    return asyncio.run(ctl.start(RolloutRequest(candidate, **kwargs), stable_version=1))


def test_canary_of_a_sound_candidate_is_promoted_with_evidence(registry: Registry) -> None:
    ctl, front, clock = _setup(registry)
    rollout = _start(ctl, steps=[10, 50, 100])
    assert rollout.state == "progressing"  # load test passed within the first tick
    assert _drive(ctl, front, clock) == "promoted"
    assert registry.resolve("churn@production").version == 2
    event = registry.alias_history("churn", "production")[-1]
    assert orjson.loads(event.reason or "{}")["rollout"] == rollout.id
    events = ctl.store.events(rollout.id)
    moves = [(e.from_state, e.to_state, e.step_index) for e in events if e.kind == "transition"]
    assert moves == [
        (None, "pending", 0),
        ("pending", "load_testing", 0),
        ("load_testing", "progressing", 0),
        ("progressing", "progressing", 1),
        ("progressing", "promoting", 1),
        ("promoting", "promoted", 1),
    ]
    kinds = {e.kind for e in events}
    assert {"load_test", "analysis"} <= kinds
    assert [e.outcome for e in events if e.kind == "analysis"][-1] == "pass"
    # the candidate took the traffic its steps said, then everything; the old pool stopped
    assert front.log[-3:] == ["stable 2", "plan split 0 -> None", "stop 1"]
    assert front.user_failures == 0


def test_failing_candidate_is_rolled_back_stable_first_with_no_failed_user_request(
    registry: Registry,
) -> None:
    ctl, front, clock = _setup(registry, {2: Behaviour(error_rate=0.3)}, load_test_s=0)
    rollout = _start(ctl)
    assert _drive(ctl, front, clock) == "rolled_back"
    assert front.user_failures == 0  # every failed candidate request was answered by stable
    assert registry.resolve("churn@production").version == 1
    stored = ctl.store.get(rollout.id)
    assert stored.reason is not None
    assert stored.reason.startswith("analysis fail: error_rate")
    assert stored.evidence is not None
    assert stored.evidence["outcome"] == "fail"
    # stable got all the traffic back before the candidate was stopped
    assert front.log[-2:] == ["plan split 0 -> None", "stop 2"]
    # the model is free for the next rollout
    assert _start(ctl, candidate=3).state == "progressing"


def test_too_slow_candidate_stops_at_the_load_test_before_any_user_request(
    registry: Registry,
) -> None:
    ctl, front, _clock = _setup(registry, {2: Behaviour(latency_ms=80.0)}, max_p99_ms=25.0)
    front.send(500)
    rollout = _start(ctl)
    assert rollout.state == "rolled_back"
    assert rollout.reason.startswith("load test at 500 req/s: fail: p99_ms")
    assert not [line for line in front.log if line.startswith("plan split") and "-> 2" in line]
    load = [e for e in ctl.store.events(rollout.id) if e.kind == "load_test"]
    assert load[0].outcome == "fail"
    assert load[0].detail is not None
    assert load[0].detail["checks"][1]["name"] == "p99_ms"


@pytest.mark.parametrize(
    "state", ["pending", "load_testing", "progressing", "paused", "awaiting_approval", "promoting"]
)
def test_abort_rolls_back_from_every_state_idempotently(registry: Registry, state: str) -> None:
    manual = state == "awaiting_approval"
    ctl, front, clock = _setup(registry, load_test_s=0, manual=manual)
    rollout = _start(ctl, steps=[20, 100])
    if state == "pending":  # as another process left it, before any tick took it up
        moved = ctl.store.transition(ctl.store.get(rollout.id), "pending")
        assert moved is not None
    elif state == "load_testing":
        rollout = ctl.store.get(rollout.id)
        moved = ctl.store.transition(rollout, "load_testing")
        assert moved is not None
    elif state == "paused":
        assert asyncio.run(ctl.command("pause")).state == "paused"
    elif state == "awaiting_approval":
        assert _drive(ctl, front, clock, until={"awaiting_approval"}) == "awaiting_approval"
    elif state == "promoting":
        moved = ctl.store.transition(ctl.store.get(rollout.id), "promoting")
        assert moved is not None
    assert ctl.store.get(rollout.id).state == state
    first = asyncio.run(ctl.command("abort"))
    assert first.state == "rolled_back"
    again = asyncio.run(ctl.command("abort"))  # idempotent
    assert again.state == "rolled_back"
    assert again.generation == first.generation
    assert registry.resolve("churn@production").version == 1
    assert front.router.plan.candidate is None
    assert front.stats(2).requests == 0  # the candidate's pool is stopped


def test_a_rollback_that_fails_half_way_is_retried(registry: Registry) -> None:
    ctl, front, _clock = _setup(registry, load_test_s=0)
    rollout = _start(ctl)
    front.fail_stop = 1
    with pytest.raises(RuntimeError):
        asyncio.run(ctl.command("abort"))
    half = ctl.store.get(rollout.id)
    assert half.state == "rolling_back"
    assert front.router.plan.candidate is None  # stable already has all the traffic
    assert asyncio.run(ctl.tick()).state == "rolled_back"  # type: ignore[union-attr]


def test_manual_steps_wait_for_approval(registry: Registry) -> None:
    ctl, front, clock = _setup(registry, load_test_s=0, manual=True)
    _start(ctl, steps=[20, 100])
    assert _drive(ctl, front, clock, until={"awaiting_approval"}) == "awaiting_approval"
    clock.advance(3600)  # approval does not time out
    assert asyncio.run(ctl.tick()).state == "awaiting_approval"  # type: ignore[union-attr]
    assert asyncio.run(ctl.command("promote")).state == "promoting"
    assert _drive(ctl, front, clock) == "promoted"


def test_pause_holds_the_weight_and_resume_goes_on(registry: Registry) -> None:
    ctl, front, clock = _setup(registry, load_test_s=0)
    _start(ctl, steps=[20, 100])
    assert asyncio.run(ctl.command("pause")).state == "paused"
    clock.advance(3600)
    assert asyncio.run(ctl.tick()).state == "paused"  # type: ignore[union-attr]
    assert front.router.plan.weight == 20  # paused keeps the split
    assert asyncio.run(ctl.command("resume")).state == "progressing"
    assert _drive(ctl, front, clock) == "promoted"


def test_a_restarted_server_resumes_the_rollout(registry: Registry) -> None:
    ctl, front, clock = _setup(registry, load_test_s=0)
    rollout = _start(ctl, steps=[10, 50, 100])
    for _ in range(120):
        _drive(ctl, front, clock, until={"never"}, seconds=1)
        if ctl.store.get(rollout.id).step_index == 1:
            break
    before = ctl.store.get(rollout.id)
    assert before.state == "progressing"
    assert before.step_index == 1
    # a new process: a fresh front that runs only stable, a fresh controller on the same store
    front2 = InMemoryFront(1)
    ctl2 = RolloutController(ctl.store, front2, registry, "churn", ctl.settings, clock=clock)
    asyncio.run(ctl2.tick())
    assert front2.log[:2] == ["start 2", "plan split 50 -> 2"]
    assert _drive(ctl2, front2, clock) == "promoted"
    assert registry.resolve("churn@production").version == 2


def test_another_process_steers_through_the_store(registry: Registry) -> None:
    ctl, _front, _clock = _setup(registry, load_test_s=0)
    rollout = _start(ctl)
    other = RolloutStore(registry.metadata_store, actor="someone-else")
    other.request(rollout.id, "abort", actor="someone-else")
    assert other.get(rollout.id).command == "abort"
    assert asyncio.run(ctl.tick()).state == "rolled_back"  # type: ignore[union-attr]
    commands = [e for e in other.events(rollout.id) if e.kind == "command"]
    assert commands[0].actor == "someone-else"


def test_bad_requests_leave_the_state_unchanged(registry: Registry) -> None:
    ctl, _front, _clock = _setup(registry, load_test_s=0)
    with pytest.raises(InvalidInputError, match="is the stable version already"):
        _start(ctl, candidate=1)
    with pytest.raises(NotFoundError, match="no version 9"):
        _start(ctl, candidate=9)
    with pytest.raises(InvalidInputError, match=r"from --steps\) does not rise strictly"):
        _start(ctl, steps=[50, 25, 100])
    with pytest.raises(InvalidInputError, match="unknown strategy 'linear'"):
        _start(ctl, strategy="linear")
    assert ctl.store.latest("churn") is None
    first = _start(ctl)
    with pytest.raises(ConflictError, match="has a rollout in progress already"):
        _start(ctl, candidate=3)
    assert ctl.store.get(first.id).generation == first.generation
    with pytest.raises(InvalidInputError, match="--steps"):
        parse_steps("5,x,100")


def test_blue_green_previews_then_switches_then_promotes(registry: Registry) -> None:
    ctl, front, clock = _setup(registry, scale_down_delay_s=10.0)
    _start(ctl, strategy="blue-green")
    assert front.send(200) == {"1": 200}  # preview: no user traffic on the candidate
    assert _drive(ctl, front, clock, until={"promoted", "rolled_back"}, seconds=5) != "promoted"
    state = _drive(ctl, front, clock, until={"promoted", "rolled_back"})
    assert state == "promoted"
    modes = [line for line in front.log if line.startswith("plan")]
    assert modes[:2] == ["plan preview 0 -> 2", "plan switched 100 -> 2"]


def test_blue_green_switches_back_when_post_promotion_analysis_fails(
    registry: Registry,
) -> None:
    ctl, front, clock = _setup(registry, {2: Behaviour(error_rate=0.2)}, load_test_s=0)
    rollout = _start(ctl, strategy="blue-green")
    assert ctl.store.get(rollout.id).step is not None
    # pre-promotion: nothing reaches the candidate, so force the switch by hand
    asyncio.run(ctl.command("promote"))
    assert front.router.plan.mode == "switched"
    assert _drive(ctl, front, clock) == "rolled_back"
    assert front.user_failures == 0
    assert front.router.plan.candidate is None


def test_ab_keeps_each_key_on_its_arm_and_judges_quality(registry: Registry) -> None:
    worse = {2: Behaviour(correct_rate=0.70), 1: Behaviour(correct_rate=0.90)}
    ctl, front, clock = _setup(registry, worse, load_test_s=0, max_quality_drop=0.02)
    _start(ctl, strategy="ab", steps=[50, 100])
    key = {b"x-modelyard-key": b"customer-42"}
    arms = {next(iter(front.send(1, key))) for _ in range(20)}
    assert len(arms) == 1  # one key, one arm
    assert _drive(ctl, front, clock) == "rolled_back"
    rollout = ctl.store.latest("churn")
    assert rollout is not None
    assert rollout.reason is not None
    assert "quality" in rollout.reason


def test_shadow_never_changes_what_users_get(registry: Registry) -> None:
    ctl, front, clock = _setup(registry, {2: Behaviour(error_rate=1.0)}, load_test_s=0)
    _start(ctl, strategy="shadow")
    answered = front.send(500)
    assert answered == {"1": 500}  # every user answer came from stable
    assert front.stats(2).requests == 500  # while the candidate saw a copy of each
    assert _drive(ctl, front, clock) == "rolled_back"
    assert front.user_failures == 0


def test_a_shadow_is_judged_on_its_model_cpu_rolled_back_when_heavier_else_promoted(
    registry: Registry,
) -> None:
    ctl, front, clock = _setup(registry, {2: Behaviour(latency_ms=40.0)}, load_test_s=0)
    _start(ctl, strategy="shadow")
    assert _drive(ctl, front, clock) == "rolled_back"
    latest = ctl.store.latest("churn")
    assert latest is not None
    assert "compute_ratio" in latest.reason
    ctl, front, clock = _setup(registry, load_test_s=0)
    _start(ctl, strategy="shadow", candidate=3)
    assert _drive(ctl, front, clock) == "promoted"
    assert registry.resolve("churn@production").version == 3
