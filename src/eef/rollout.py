"""Batched rollouts: many episodes advance together, one generation call per turn for all live ones.

An episode starts either from a task's initial state or from a state inside a recorded
(expert) trajectory, reached by reset + replay; the recorded turns up to that state become
the conversation's context, untrained (``loss=False``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

import torch

from eef.config import RolloutConfig, SamplingConfig
from eef.envs.base import Environment, Suite, restore_points
from eef.policy.engine import TurnGenerator
from eef.policy.tokenize import PromptEncoder
from eef.react import INVALID_TURN, parse_action
from eef.seeding import derive_seed
from eef.types import EpisodeStart, Message, Task, Termination, Trajectory

# A safety net: environments enforce their own step limits.
MAX_TURNS = 50


def recorded_prefix(source: Trajectory, action_index: int) -> list[Message]:
    """The messages of ``source`` up to the observation after its ``action_index``-th action,
    with loss off (context only)."""
    messages: list[Message] = []
    actions = 0
    for message in source.messages:
        if message.role == "assistant":
            if actions == action_index:
                break
            actions += 1
        messages.append(message.model_copy(update={"loss": False}))
    return messages


def replay_actions(source: Trajectory, action_index: int) -> tuple[list[str], list[str]]:
    turns = source.agent_turns()[:action_index]
    actions = [parse_action(turn) or "" for turn in turns]
    return actions, source.observations()[:action_index]


@dataclass
class _Episode:
    start: EpisodeStart
    env: Environment
    messages: list[Message]
    seed: int
    actions: int = 0
    consecutive_invalid: int = 0
    prompt_tokens: int = 0
    prefilled_tokens: float = 0.0
    generated_tokens: int = 0
    reward: float = 0.0
    termination: Termination | None = None


def episodes_in_flight(suite: Suite, rollout: RolloutConfig) -> int:
    """How many episodes :meth:`RolloutEngine.run` advances together: the batch, or fewer where the suite
    can hold only so many environments at once."""
    if suite.max_concurrent_envs is None:
        return rollout.batch_size
    return min(rollout.batch_size, suite.max_concurrent_envs)


class RolloutEngine:
    """Runs episodes of one suite with one policy, in batches and limits as ``rollout`` says, each turn
    sampled as ``sampling`` says (a run's ``rollout.explore`` or ``rollout.evaluate``); ``origin`` tags the
    trajectories it returns."""

    def __init__(
        self,
        suite: Suite,
        generator: TurnGenerator,
        rollout: RolloutConfig,
        sampling: SamplingConfig,
        origin: str,
        max_turns: int = MAX_TURNS,
    ):
        self.suite = suite
        self.generator = generator
        self.rollout = rollout
        self.sampling = sampling
        self.origin = origin
        self.max_turns = max_turns
        # auto: overlap where a GPU generates (on a CPU, generation and the environments compete for the cores).
        self.overlap_steps = torch.cuda.is_available() if rollout.overlap_steps == "auto" else rollout.overlap_steps
        self.prompts = PromptEncoder(generator.tokenizer)

    def run(
        self,
        starts: list[EpisodeStart],
        seed: int,
        on_done: Callable[[Trajectory], None] | None = None,
    ) -> list[Trajectory]:
        """Roll out every start; returns trajectories in the order of ``starts``.

        Each episode's turns sample from a stream of their own, seeded from ``seed`` (recorded in each
        trajectory), the start and the turn: the same start and seed give the same trajectory whatever
        the batch size, the other starts or the engine (given the same logits).
        ``on_done`` sees each trajectory as soon as its episode ends (for progress and logs)."""
        results: dict[str, Trajectory] = {}
        in_flight = episodes_in_flight(self.suite, self.rollout)
        for chunk_begin in range(0, len(starts), in_flight):
            chunk = starts[chunk_begin : chunk_begin + in_flight]
            for trajectory in self._run_chunk(chunk, seed):
                results[trajectory.id] = trajectory
                if on_done is not None:
                    on_done(trajectory)
        return [results[self._trajectory_id(start)] for start in starts]

    def _trajectory_id(self, start: EpisodeStart) -> str:
        return f"{self.origin}/{start.key}"

    def _begin(self, chunk: list[EpisodeStart], seed: int) -> list[_Episode]:
        """Episodes for ``chunk``; restarts from one recorded trajectory share one replay of it
        when the environment can fork its state."""
        environments: dict[int, Environment] = {}
        restarts: dict[str, tuple[Trajectory, Task, list[int]]] = {}
        with ExitStack() as made:  # a failed replay or reset closes what was made (pop_all: the episodes own it)
            for position, start in enumerate(chunk):
                if start.source is None:
                    environments[position] = made.enter_context(self.suite.make())
                else:
                    restarts.setdefault(start.source.id, (start.source, start.task, []))[2].append(position)
            for source, task, positions in restarts.values():
                indices = [chunk[position].action_index for position in positions]
                actions, observations = replay_actions(source, max(indices))
                restored = restore_points(self.suite, task, actions, observations, indices)
                environments.update(zip(positions, [made.enter_context(env) for env in restored], strict=True))
            episodes = []
            for position, start in enumerate(chunk):
                env = environments[position]
                if start.source is None:
                    messages = [
                        Message(role="system", content=self.suite.instruction),
                        Message(role="user", content=env.reset(start.task)),
                    ]
                else:
                    messages = recorded_prefix(start.source, start.action_index)
                # Actions count from the task's start, as the environment's step limit does.
                episodes.append(_Episode(start, env, messages, seed, actions=start.action_index))
            made.pop_all()
        return episodes

    def _run_chunk(self, chunk: list[EpisodeStart], seed: int) -> list[Trajectory]:
        """Turn after turn until every episode of ``chunk`` has ended.

        When the suite's steps wait on other processes (``concurrent_steps``) and ``overlap_steps`` is
        on, the episodes form two lanes that take turns: while one lane's environments step (in
        threads), the model generates the other lane's turns, so neither waits for the other."""
        episodes = self._begin(chunk, seed)
        overlap = self.overlap_steps and self.suite.concurrent_steps and len(episodes) > 1
        # A lane holds its live episodes; _finish takes out the ended ones once their steps are done.
        lanes = [episodes[0::2], episodes[1::2]] if overlap else [episodes]
        finished: list[Trajectory] = []
        stepping: list[Future[None] | None] = [None] * len(lanes)
        try:
            with ThreadPoolExecutor(max_workers=len(lanes)) as steppers:
                while any(lanes):
                    for index, lane in enumerate(lanes):
                        if (future := stepping[index]) is not None:
                            future.result()  # the lane's previous steps, before its next prompts
                            stepping[index] = None
                            finished += self._finish(lane)
                        if not lane:
                            continue
                        turns = self._generate_turns(lane)
                        # With one lane the next pass waits for these steps at once: turns run one after another.
                        stepping[index] = steppers.submit(self._step_turns, turns)
        except BaseException:
            # The episodes still in a lane have not been closed by _finish (the steppers are done by now).
            for lane in lanes:
                for episode in lane:
                    episode.env.close()
            raise
        return finished

    def _generate_turns(self, live: list[_Episode]) -> list[tuple[_Episode, str]]:
        """The next turn of each live episode (an episode whose prompt no longer fits ends instead)."""
        prompts = self.prompts.encode(
            [episode.messages for episode in live], [self._trajectory_id(episode.start) for episode in live]
        )
        stepping = []
        for episode, prompt in zip(live, prompts, strict=True):
            if len(prompt) + self.sampling.max_new_tokens > self.rollout.max_context_tokens:
                episode.termination = "context_limit"
            else:
                stepping.append((episode, prompt))
        generations = self.generator.generate(
            [prompt for _, prompt in stepping],
            self.sampling,
            # Each episode's turn samples from its own stream: the same in any batch, chunk or lane.
            seeds=[derive_seed(episode.seed, episode.start.key, episode.actions) for episode, _ in stepping],
            keys=[self._trajectory_id(episode.start) for episode, _ in stepping],
        )
        for (episode, prompt), generation in zip(stepping, generations, strict=True):
            episode.prompt_tokens += len(prompt)
            episode.prefilled_tokens += generation.prefilled_tokens
            episode.generated_tokens += generation.new_tokens
        return [(episode, generation.text) for (episode, _), generation in zip(stepping, generations, strict=True)]

    def _step_turns(self, turns: list[tuple[_Episode, str]]) -> None:
        if self.suite.concurrent_steps and len(turns) > 1:
            # Each episode steps its own instance; _step touches nothing shared.
            with ThreadPoolExecutor(max_workers=len(turns)) as steppers:
                list(steppers.map(lambda turn_of: self._step(*turn_of), turns))
        else:
            for episode, text in turns:
                self._step(episode, text)

    def _finish(self, lane: list[_Episode]) -> list[Trajectory]:
        """Record, close and forget the episodes of ``lane`` that have ended, and take them out of it."""
        ended = [episode for episode in lane if episode.termination is not None]
        lane[:] = [episode for episode in lane if episode.termination is None]
        for episode in ended:
            episode.env.close()
            key = self._trajectory_id(episode.start)
            self.generator.release(key)
            self.prompts.forget(key)
        return [self._record(episode) for episode in ended]

    def _step(self, episode: _Episode, turn_text: str) -> None:
        episode.messages.append(Message(role="assistant", content=turn_text.strip(), loss=True))
        episode.actions += 1
        action = parse_action(turn_text)
        if action is None:
            observation, invalid = INVALID_TURN, True
        else:
            result = episode.env.step(action)
            observation, invalid = result.observation, bool(result.info.get("invalid"))
            if result.done:
                episode.reward = result.reward
                success = self.suite.is_success(result.reward)
                episode.termination = "success" if success else result.info.get("termination", "done")
        episode.messages.append(Message(role="user", content=observation))
        episode.consecutive_invalid = episode.consecutive_invalid + 1 if invalid else 0
        if episode.termination is None:
            if episode.consecutive_invalid >= self.rollout.max_invalid_actions:
                episode.termination = "invalid_limit"
            elif episode.actions >= self.max_turns:
                episode.termination = "step_limit"

    def _record(self, episode: _Episode) -> Trajectory:
        start = episode.start
        return Trajectory(
            id=self._trajectory_id(start),
            env=start.task.env,
            task_id=start.task.task_id,
            messages=episode.messages,
            reward=episode.reward,
            success=self.suite.is_success(episode.reward),
            origin=self.origin,
            start=start.start_state,
            termination=episode.termination or "done",
            num_actions=episode.actions,
            seed=episode.seed,
            difficulty=start.task.difficulty,
            prompt_tokens=episode.prompt_tokens,
            prefilled_tokens=round(episode.prefilled_tokens),
            generated_tokens=episode.generated_tokens,
        )
