"""Reaching recorded states: one replay per restart point, or one replay for all when the environment forks."""

import pytest

from eef.envs.base import Environment, ReplayDivergence, StepResult, restore, restore_points
from eef.envs.registry import get_suite
from eef.experts.collect import collect
from eef.experts.registry import make_expert
from eef.react import parse_action


class _Unforkable(Environment):
    """The shop environment without fork(): the path every simulator in another process takes."""

    def __init__(self, inner: Environment):
        self.inner = inner

    def reset(self, task):
        return self.inner.reset(task)

    def step(self, action: str) -> StepResult:
        return self.inner.step(action)


@pytest.fixture(scope="module")
def shop():
    return get_suite("shop")


@pytest.fixture(scope="module")
def failure(shop):
    trajectories = collect(shop, make_expert("shop", "scripted"), shop.tasks("train")[:40], seed=0)
    return next(t for t in trajectories if not t.success and t.num_actions >= 5)


def _recorded(failure):
    return [parse_action(turn) or "" for turn in failure.agent_turns()], failure.observations()


def _next_observation(env: Environment, action: str) -> str:
    return env.step(action).observation


@pytest.mark.parametrize("forkable", [True, False])
def test_restore_points_reach_the_same_states_as_restore(shop, failure, forkable, monkeypatch):
    if not forkable:
        make = shop.make
        monkeypatch.setattr(shop, "make", lambda: _Unforkable(make()))
    task = next(t for t in shop.tasks("train") if t.task_id == failure.task_id)
    actions, observations = _recorded(failure)
    indices = [3, 1, 3, 2]
    environments = restore_points(shop, task, actions, observations, indices)
    assert len(environments) == 4 and len({id(env) for env in environments}) == 4
    for env, index in zip(environments, indices, strict=True):
        reference = shop.make()
        restore(reference, task, actions[:index], observations[:index])
        assert _next_observation(env, actions[index]) == _next_observation(reference, actions[index])
    # Two environments at one point are independent: stepping one leaves the other where it was.
    first, second = restore_points(shop, task, actions, observations, [3, 3])
    _next_observation(first, actions[3])
    _next_observation(first, actions[4])
    assert _next_observation(second, actions[3]) == observations[3]


def test_restore_points_refuse_a_recording_the_environment_does_not_reproduce(shop, failure):
    task = next(t for t in shop.tasks("train") if t.task_id == failure.task_id)
    actions, observations = _recorded(failure)
    tampered = [*observations[:1], "a page nobody saw", *observations[2:]]
    with pytest.raises(ReplayDivergence, match="after action 1"):
        restore_points(shop, task, actions, tampered, [1, 3])


class CountedEnvironment(Environment):
    """The shop environment (forking or not), keeping the set of its instances not closed yet."""

    def __init__(self, inner: Environment, open_: set, forkable: bool):
        self.inner, self.open, self.forkable = inner, open_, forkable
        open_.add(self)

    def reset(self, task):
        return self.inner.reset(task)

    def step(self, action: str) -> StepResult:
        return self.inner.step(action)

    def fork(self):
        return CountedEnvironment(self.inner.fork(), self.open, True) if self.forkable else None

    def close(self) -> None:
        self.open.discard(self)


@pytest.mark.parametrize("forkable", [True, False])
def test_a_failed_replay_closes_every_environment_it_made(shop, failure, forkable, monkeypatch):
    open_: set = set()
    make = shop.make
    monkeypatch.setattr(shop, "make", lambda: CountedEnvironment(make(), open_, forkable))
    task = next(t for t in shop.tasks("train") if t.task_id == failure.task_id)
    actions, observations = _recorded(failure)
    tampered = [*observations[:3], "a page nobody saw", *observations[4:]]
    with pytest.raises(ReplayDivergence, match="after action 3"):
        restore_points(shop, task, actions, tampered, [1, 4, 1])  # the points at 1 are reached first
    assert open_ == set()
    environments = restore_points(shop, task, actions, observations, [1, 4])
    assert len(open_) == 2  # what succeeds is the caller's to close
    for env in environments:
        with env:
            pass
    assert open_ == set()
