"""Rollouts on Ray workers (a run's ``cluster`` settings, docs/scale-out.md).

Each worker is a Ray actor with its own environments, built from the run's environment name and options,
and a replica of the policy, loaded from the checkpoint path a chunk names (so checkpoints must be on storage
every node sees). The driver hands out chunks of episode starts, each with its fixed seed, to the workers as
they free up and yields each chunk's trajectories as it is done: a chunk's trajectories are those the run's
own process would roll out from the same starts and seed, whatever worker runs it. Only plain data crosses
processes: starts, sampling settings and trajectories as dicts, seeds, paths.

A worker that dies (its process or its node) is restarted by Ray and the chunk it held is rerun
(``max_restarts`` and ``max_task_retries``); a chunk is yielded once, when its result arrives, so nothing is
written twice. Ray is imported only here, and only when a pool starts.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eef.config import ClusterConfig, EnvConfig, RolloutConfig, SamplingConfig
from eef.envs.registry import get_suite
from eef.errors import IncompleteError, UserError
from eef.policy.engine import TurnGenerator
from eef.policy.generators import load_generator
from eef.rollout import RolloutEngine
from eef.types import EpisodeStart, Task, Trajectory

# A test's hook: the first worker to take a chunk creates the file this names and exits, as a crash would.
EXIT_ONCE_VARIABLE = "EEF_TEST_WORKER_EXIT_ONCE"


def check_cluster(cluster: ClusterConfig) -> None:
    """Raise a user error, before any work is done, when the run asks for Ray workers and Ray is not installed,
    or names a head node (HOST:PORT) where nothing answers (Ray itself would retry for minutes)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError("cluster.workers asks for Ray workers but ray is not installed: pip install ray") from None
    if cluster.address in (None, "local", "auto"):
        return
    host, _, port = cluster.address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as err:
        raise UserError(
            f"cluster.address {cluster.address}: nothing answers there ({err.strerror or err}); start the head"
            f" node (`ray start --head --port={port}`) or correct the address"
        ) from None


def start_to_data(start: EpisodeStart) -> dict[str, Any]:
    return {
        "task": start.task.model_dump(mode="json"),
        "source": None if start.source is None else start.source.model_dump(mode="json", by_alias=True),
        "action_index": start.action_index,
        "sample": start.sample,
    }


def start_from_data(data: dict[str, Any]) -> EpisodeStart:
    source = data["source"]
    return EpisodeStart(
        task=Task.model_validate(data["task"]),
        source=None if source is None else Trajectory.model_validate(source),
        action_index=data["action_index"],
        sample=data["sample"],
    )


class RolloutWorker:
    """One worker's state (a Ray actor in :class:`RolloutPool`): the suite, and the policy of the last
    checkpoint it was given, kept until a chunk names another."""

    def __init__(self, env: dict[str, Any], rollout: dict[str, Any], dtype: str):
        settings = EnvConfig.model_validate(env)
        self.suite = get_suite(settings.name, **settings.options)
        self.rollout = RolloutConfig.model_validate(rollout)
        self.dtype = dtype
        self.checkpoint: str | None = None
        self.generator: TurnGenerator | None = None

    def roll_out(
        self, checkpoint: str, sampling: dict[str, Any], origin: str, starts: list[dict[str, Any]], seed: int
    ) -> list[dict[str, Any]]:
        _exit_once_for_tests()
        if self.generator is None or checkpoint != self.checkpoint:
            self.generator = None  # the previous replica goes before the next one loads
            self.generator = load_generator(checkpoint, self.dtype, self.rollout)
            self.checkpoint = checkpoint
        engine = RolloutEngine(
            self.suite, self.generator, self.rollout, SamplingConfig.model_validate(sampling), origin
        )
        trajectories = engine.run([start_from_data(start) for start in starts], seed)
        return [trajectory.model_dump(mode="json", by_alias=True) for trajectory in trajectories]


def _exit_once_for_tests() -> None:
    marker = os.environ.get(EXIT_ONCE_VARIABLE)
    if not marker:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(1)


def _refused(address: str) -> str:
    """Why a head node that answers may still turn the run away: a `ray start` cluster (Ray 2.60, as tested) asks
    for a token, which a driver sends to a HOST:PORT only where RAY_AUTH_MODE=token says so."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return (
            f"cluster.address {address}: the Ray cluster there did not accept the connection; if it asks for a"
            " token (as `ray start` clusters do), set RAY_AUTH_MODE=token where eef runs, with the cluster's token"
            " in ~/.ray/auth_token or RAY_AUTH_TOKEN_PATH (docs/scale-out.md)"
        )
    return (
        f"cluster.address {address}: the Ray cluster there did not accept the connection: check that the token"
        " in ~/.ray/auth_token or RAY_AUTH_TOKEN_PATH is the cluster's and that both run the same Ray version"
    )


class RolloutPool:
    """``cluster.workers`` Ray actors (:class:`RolloutWorker`), connected to as ``cluster.address`` says;
    :meth:`close` disconnects (and stops a Ray instance this pool started)."""

    def __init__(self, cluster: ClusterConfig, env: EnvConfig, rollout: RolloutConfig, dtype: str, run_directory: Path):
        check_cluster(cluster)
        import ray

        self.ray = ray
        self.run_directory = run_directory
        # The workers see the EEF_ settings of this process (cache and data folders, quiet progress).
        runtime_env = {"env_vars": {key: value for key, value in os.environ.items() if key.startswith("EEF_")}}
        address = cluster.address or "local"  # local: a new Ray instance on this machine, stopped by close()
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env=runtime_env,
                logging_level=logging.ERROR,  # stderr keeps to eef's progress and one-line errors
            )
        except ConnectionError:
            if address == "auto":  # no `ray start` cluster runs here
                raise UserError(
                    f"cluster.address {address}: no Ray cluster found; start one (`ray start --head`) or give HOST:PORT"
                ) from None
            raise UserError(_refused(address)) from None
        self._check_room(cluster)
        actor = ray.remote(
            num_cpus=cluster.cpus_per_worker,
            num_gpus=cluster.gpus_per_worker,
            max_restarts=cluster.worker_restarts,
            max_task_retries=cluster.worker_restarts,
        )(RolloutWorker)
        settings = (env.model_dump(mode="json"), rollout.model_dump(mode="json"), dtype)
        self.workers = [actor.remote(*settings) for _ in range(cluster.workers)]

    def _check_room(self, cluster: ClusterConfig) -> None:
        """The workers must all fit at once (a worker that cannot start would hold its chunk for ever)."""
        available = self.ray.cluster_resources()
        for key, resource, per_worker in (
            ("cpus", "CPU", cluster.cpus_per_worker),
            ("gpus", "GPU", cluster.gpus_per_worker),
        ):
            if cluster.workers * per_worker > available.get(resource, 0):
                self.ray.shutdown()
                raise UserError(
                    f"cluster.workers={cluster.workers} with cluster.{key}_per_worker={per_worker} needs "
                    f"{cluster.workers * per_worker:g} {resource}s, the Ray cluster has {available.get(resource, 0):g}:"
                    " lower them or add nodes"
                )

    def roll_out(
        self,
        checkpoint: Path,
        sampling: SamplingConfig,
        origin: str,
        chunks: dict[int, list[EpisodeStart]],
        seeds: dict[int, int],
    ) -> Iterator[tuple[int, list[Trajectory]]]:
        """Each chunk's index and trajectories (in the order of its starts), as the chunks finish; chunk ``i``
        rolls out with seed ``seeds[i]``."""
        ray = self.ray
        waiting = deque(chunks)
        idle = list(self.workers)
        running: dict[Any, tuple[int, Any]] = {}
        while waiting or running:
            while waiting and idle:
                index, worker = waiting.popleft(), idle.pop()
                starts = [start_to_data(start) for start in chunks[index]]
                call = worker.roll_out.remote(str(checkpoint), sampling.model_dump(), origin, starts, seeds[index])
                running[call] = (index, worker)
            [finished], _ = ray.wait(list(running), num_returns=1)
            index, worker = running.pop(finished)
            try:
                records = ray.get(finished)
            except ray.exceptions.RayActorError as err:
                if err.actor_init_failed:  # e.g. eef, or what the environment needs, is not installed on its node
                    cause = str(err).strip().splitlines()[-1]
                    raise UserError(f"a rollout worker could not start: {cause} (docs/scale-out.md)") from None
                raise IncompleteError(
                    f"a rollout worker died more often than cluster.worker_restarts allows ({err.__class__.__name__}):"
                    f" the chunks done are kept; `eef run --resume {self.run_directory}` continues"
                ) from None
            idle.append(worker)
            yield index, [Trajectory.model_validate(record) for record in records]

    def close(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker)
        self.ray.shutdown()
