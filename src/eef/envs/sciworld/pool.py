"""A bounded pool of ScienceWorld JVMs, reused across episodes and all ended at exit.

Starting a JVM takes ~1-2 s and holds 350-550 MB (heap capped by ``-Xmx``), so environments lease one
for the length of their use and give it back on ``close``; at most ``max_size`` are alive at once.
"""

from __future__ import annotations

import atexit
import threading
import weakref

from eef.envs.sciworld.jvm import Simulator

_POOLS: weakref.WeakSet[SimulatorPool] = weakref.WeakSet()


class PoolExhausted(RuntimeError):
    """More simulators asked for at once than the pool may start."""


class SimulatorPool:
    def __init__(self, java: str, heap: str, max_size: int) -> None:
        self.java = java
        self.heap = heap
        self.max_size = max_size
        self._idle: list[Simulator] = []
        self._leased: set[Simulator] = set()
        self.started = 0  # JVMs launched over the pool's life
        self.replaced = 0  # JVMs that died in use and were replaced
        # Rollouts step environments in threads, and a failed step replaces its JVM from there.
        self._lock = threading.RLock()
        _POOLS.add(self)

    @property
    def alive(self) -> int:
        return len(self._idle) + len(self._leased)

    def lease(self) -> Simulator:
        with self._lock:
            return self._lease()

    def _lease(self) -> Simulator:
        while self._idle:
            simulator = self._idle.pop()
            if simulator.alive:
                self._leased.add(simulator)
                return simulator
            simulator.close()  # died while idle: reap it
        if self.alive >= self.max_size:
            raise PoolExhausted(
                f"all {self.max_size} ScienceWorld JVMs are in use: keep at most that many environments open "
                "(the suite's max_concurrent_envs), or raise the sciworld option max_envs"
            )
        simulator = Simulator.launch(self.java, self.heap)
        self.started += 1
        self._leased.add(simulator)
        return simulator

    def release(self, simulator: Simulator) -> None:
        with self._lock:
            self._leased.discard(simulator)
            if simulator.alive:
                self._idle.append(simulator)
            else:
                simulator.close()

    def replace(self, simulator: Simulator) -> Simulator:
        """End ``simulator`` (it failed) and lease a fresh one in its place."""
        with self._lock:
            self._leased.discard(simulator)
            simulator.close()
            self.replaced += 1
            return self._lease()

    def close(self) -> None:
        """End every JVM of the pool, leased or idle."""
        for simulator in [*self._idle, *self._leased]:
            simulator.close()
        self._idle.clear()
        self._leased.clear()


@atexit.register
def _close_all_pools() -> None:
    for pool in list(_POOLS):
        pool.close()
