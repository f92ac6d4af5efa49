"""The engine's pure core, with a controllable clock: no database, no provider."""

from __future__ import annotations

import datetime as dt

from welfare.incidents.escalation import (
    EngineState,
    Policy,
    Step,
    StepKind,
    due_steps,
    next_due_at,
    plan,
)

T0 = dt.datetime(2026, 11, 28, 4, 0, tzinfo=dt.UTC)


def at(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def shape(steps: list[Step]) -> list[tuple[int, str, str | None, int]]:
    return [(s.offset_seconds, s.kind.value, s.contact_id, s.round) for s in steps]


def test_default_plan_for_two_contacts_matches_the_brief() -> None:
    steps = plan(Policy(), ["son", "daughter"])
    assert shape(steps) == [
        (0, "contact", "son", 1),
        (120, "contact", "daughter", 1),
        (240, "duty_manager", None, 1),
        (240, "contact", "son", 2),
        (360, "contact", "daughter", 2),
    ]
    assert steps[0].channels == ("sms", "voice")


def test_a_long_list_is_cut_by_the_manager_alert_at_ten_minutes() -> None:
    contacts = [f"c{i}" for i in range(7)]
    steps = plan(Policy(), contacts)
    first_pass = [s for s in steps if s.round == 1 and s.kind is StepKind.contact]
    manager = next(s for s in steps if s.kind is StepKind.duty_manager)
    assert manager.offset_seconds == 600
    assert [s.contact_id for s in first_pass] == contacts  # c5, c6 continue after the alert
    assert [s.offset_seconds for s in first_pass][-2:] == [600, 720]
    assert len([s for s in steps if s.round == 2]) == 7


def test_no_contacts_goes_straight_to_the_duty_manager() -> None:
    assert shape(plan(Policy(), [])) == [(0, "duty_manager", None, 1)]


def test_policy_round_trips_through_json() -> None:
    policy = Policy(
        contact_interval_seconds=60,
        manager_after_seconds=300,
        channels=("voice",),
        repeat_list=0,
        urgent=True,
    )
    assert Policy.from_json(policy.to_json()) == policy
    steps = plan(policy, ["a"])
    assert [Step.from_json(s.to_json()) for s in steps] == steps


def test_due_steps_follow_the_clock() -> None:
    steps = plan(Policy(), ["son", "daughter"])
    state = EngineState()
    assert [s.index for s in due_steps(steps, T0, state, at(0))] == [0]
    state.started[0] = at(0)
    assert due_steps(steps, T0, state, at(119)) == []
    assert [s.index for s in due_steps(steps, T0, state, at(120))] == [1]
    state.started[1] = at(120)
    assert [s.index for s in due_steps(steps, T0, state, at(240))] == [2, 3]
    assert next_due_at(steps, T0, state) == at(240)


def test_confirmation_stops_everything() -> None:
    steps = plan(Policy(), ["son", "daughter"])
    state = EngineState(started={0: at(0)}, stopped=True)
    assert due_steps(steps, T0, state, at(10_000)) == []
    assert next_due_at(steps, T0, state) is None


def test_a_step_that_reached_no_one_pulls_the_next_forward() -> None:
    steps = plan(Policy(), ["son", "daughter"])
    state = EngineState(started={0: at(0)}, failed={0: at(5)})
    assert [s.index for s in due_steps(steps, T0, state, at(5))] == [1]
    assert next_due_at(steps, T0, state) == at(5)


def test_a_late_worker_starts_every_overdue_step_at_once() -> None:
    steps = plan(Policy(), ["son", "daughter"])
    assert [s.index for s in due_steps(steps, T0, EngineState(), at(1000))] == [0, 1, 2, 3, 4]
