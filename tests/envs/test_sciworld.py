"""sciworld on the real simulator: tasks and splits, reset/step, step limits, replay of gold prefixes,
a JVM killed mid-episode, the pool's bound, and no JVM left behind."""

import os
import signal
import subprocess
import sys

import pytest

from eef.envs.base import restore
from eef.envs.registry import get_suite
from eef.envs.sciworld.env import UNKNOWN_ACTION, SciWorldSuite
from eef.envs.sciworld.java import unavailable_reason
from eef.envs.sciworld.pool import PoolExhausted
from eef.envs.sciworld.tasks import ETO_STEP_LIMITS
from eef.errors import UserError

pytestmark = [
    pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason())),
    pytest.mark.xdist_group("sciworld"),  # its JVM checks count them machine-wide: tests/conftest.py
]


def scienceworld_jvms() -> set[int]:
    """Process ids of running JVMs started from scienceworld's jar."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if b"scienceworld.jar" in handle.read():
                    found.add(int(pid))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def suite():
    before = scienceworld_jvms()
    suite = SciWorldSuite(max_envs=2)
    yield suite
    suite.close()
    assert scienceworld_jvms() - before == set(), "the suite left a JVM running"


def task(suite: SciWorldSuite, task_id: str, split: str = "train"):
    return next(t for t in suite.tasks(split) if t.task_id == task_id)


def play(env, actions):
    """Step through ``actions``, stopping at the end of the episode."""
    results = []
    for action in actions:
        results.append(env.step(action))
        if results[-1].done:
            break
    return results


def test_splits_follow_eto(suite):
    test = suite.tasks("test")
    assert len(test) == 211  # ETO's unseen split: the first 10 test variations of each of its 24 tasks
    assert {t.difficulty for t in test} == set(ETO_STEP_LIMITS) == set(suite.difficulty_levels())
    assert test[0].task_id == "boil-21" and test[0].meta == {"task_name": "boil", "variation": 21, "max_steps": 100}
    ids = {split: {t.task_id for t in suite.tasks(split)} for split in suite.splits()}
    assert not ids["train"] & ids["dev"] and not ids["train"] & ids["test"] and not ids["dev"] & ids["test"]
    # Interleaved: the first tasks of a split cover every task before any repeats.
    assert len({t.difficulty for t in suite.tasks("train")[:24]}) == 24


def test_bad_options_and_split_are_user_errors(suite):
    with pytest.raises(UserError, match="unknown task"):
        get_suite("sciworld", tasks=["boil", "mendelian-genetics-known-plant"])
    with pytest.raises(UserError, match="heap must look like"):
        get_suite("sciworld", heap="lots")
    with pytest.raises(UserError, match="unknown split 'val'"):
        suite.tasks("val")


def test_reset_and_step(suite):
    env = suite.make()
    try:
        observation = env.reset(task(suite, "find-non-living-thing-0"))
        assert observation.startswith("Task Description:\nYour task is to find a(n) non-living thing.")
        assert "This room is called the" in observation
        result = env.step("teleport to kitchen")
        assert result.observation == "You teleport to the kitchen." and not result.done
        assert result.info == {"invalid": False, "score": result.info["score"]}
        unknown = env.step("fly to the moon")
        assert unknown.observation.startswith(UNKNOWN_ACTION) and unknown.info["invalid"]
    finally:
        env.close()


def test_gold_path_succeeds_with_reward_one(suite):
    env = suite.make()
    try:
        env.reset(task(suite, "chemistry-mix-paint-secondary-color-0"))
        results = play(env, env.gold_path())
        assert results[-1].done and results[-1].reward == 1.0 and suite.is_success(results[-1].reward)
        assert results[-1].info["termination"] == "done"
        assert env.step("look around").done  # stepping past the end changes nothing
    finally:
        env.close()


def test_step_limit_ends_the_episode_with_the_best_score(suite):
    env = suite.make()
    try:
        limited = task(suite, "lifespan-longest-lived-0")
        env.reset(limited)
        results = play(env, ["look around"] * limited.meta["max_steps"])
        assert [r.done for r in results] == [False] * 9 + [True]
        assert results[-1].info["termination"] == "step_limit" and results[-1].reward == 0.0
    finally:
        env.close()


def test_gold_prefixes_replay_to_the_same_observations_on_another_jvm(suite):
    """EEF restarts from expert states by reset + replay: the observations must be reproduced exactly."""
    recorder, replayer = suite.make(), suite.make()
    try:
        for task_id in ("boil-0", "grow-plant-0"):  # a long one and one driven by the clock (plants grow)
            gold_task = task(suite, task_id)
            recorder.reset(gold_task)
            actions = recorder.gold_path()[:20]
            observations = [r.observation for r in play(recorder, actions)]
            restore(replayer, gold_task, actions, observations)  # raises ReplayDivergence on any difference
        assert recorder._simulator is not replayer._simulator
    finally:
        recorder.close()
        replayer.close()


def test_a_killed_jvm_is_replaced_and_the_episode_completes(suite):
    env = suite.make()
    try:
        env.reset(task(suite, "power-component-0"))
        gold = env.gold_path()
        play(env, gold[:3])
        replaced_before = suite.pool.replaced
        os.kill(env._simulator.process.pid, signal.SIGKILL)
        env._simulator.process.wait()
        results = play(env, gold[3:])
        assert results[-1].done and results[-1].reward == 1.0
        assert results[0].info["jvm_replaced"] == 1 and suite.pool.replaced == replaced_before + 1
    finally:
        env.close()


def test_pool_reuses_jvms_and_is_bounded(suite):
    first = suite.make()
    first.reset(task(suite, "find-plant-0"))
    simulator = first._simulator
    first.close()
    envs = [suite.make() for _ in range(3)]
    try:
        envs[0].reset(task(suite, "find-plant-0"))
        assert envs[0]._simulator is simulator  # given back on close, leased again
        envs[1].reset(task(suite, "find-plant-1"))
        with pytest.raises(PoolExhausted, match="all 2 ScienceWorld JVMs are in use"):
            envs[2].reset(task(suite, "find-plant-2"))
    finally:
        for env in envs:
            env.close()
    assert suite.max_concurrent_envs == suite.pool.alive == 2


def test_no_jvm_survives_the_process():
    """A process that used sciworld and exits without closing anything leaves no JVM (atexit + die_on_exit)."""
    before = scienceworld_jvms()
    script = (
        "from eef.envs.registry import get_suite\n"
        "suite = get_suite('sciworld', max_envs=1)\n"
        "env = suite.make(); env.reset(suite.tasks('dev')[0]); env.step('look around')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert scienceworld_jvms() - before == set()


def test_canonical_observation_sorts_listings_only():
    from eef.envs.sciworld.text import canonical_observation

    a = "Room:\n\tthe agent\n\ta table. On the table is: a jug (containing a, b), a cup.\n\ta chair\nYou also see:"
    b = "Room:\n\ta chair\n\tthe agent\n\ta table. On the table is: a cup, a jug (containing a, b).\nYou also see:"
    assert canonical_observation(a) == canonical_observation(b)
    assert canonical_observation("You move the jug to the sink.") == "You move the jug to the sink."


def test_a_failed_replay_leaves_no_jvm_leased():
    """restore_points leases a JVM per restart point; a replay that diverges gives every one back (the
    pool is bounded: leaked leases would refuse the next environments)."""
    from eef.envs.base import ReplayDivergence, restore_points

    before = scienceworld_jvms()
    suite = SciWorldSuite(max_envs=2)
    try:
        gold_task = task(suite, "find-plant-0")
        with suite.make() as recorder:
            recorder.reset(gold_task)
            actions = recorder.gold_path()[:4]
            observations = [r.observation for r in play(recorder, actions)]
        tampered = [*observations[:2], "a room nobody saw", *observations[3:]]
        with pytest.raises(ReplayDivergence, match="after action 2"):
            restore_points(suite, gold_task, actions, tampered, [1, 3])
        assert suite.pool.alive >= 1 and not suite.pool._leased
        with suite.make() as first, suite.make() as second:  # both JVMs can be leased again
            first.reset(gold_task)
            second.reset(gold_task)
    finally:
        suite.close()
    assert scienceworld_jvms() - before == set()
