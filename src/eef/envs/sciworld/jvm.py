"""One ScienceWorld simulator: a JVM started with a bounded heap, reached over py4j, and really ended.

scienceworld's own wrapper (``ScienceWorldEnv``) asks the JVM for the look, inventory, task description
and the valid-action list after every step (~120 ms of a ~15 ms step); :class:`Simulator` calls the
simulator's interface directly and asks only for what its caller uses.
"""

from __future__ import annotations

import contextlib
import subprocess

from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
from py4j.protocol import Py4JError

# What a dead or unreachable JVM raises through py4j (a network error is a Py4JError).
SIMULATOR_ERRORS: tuple[type[BaseException], ...] = (Py4JError, OSError)


class Simulator:
    """A JVM running ScienceWorld's ``PythonInterface``. ``close`` ends the process (killed if it lingers)."""

    def __init__(self, gateway: JavaGateway, process: subprocess.Popen) -> None:
        self._gateway = gateway
        self.process = process
        self.server = gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface()

    @classmethod
    def launch(cls, java: str, heap: str) -> Simulator:
        from scienceworld.constants import BASEPATH, JAR_PATH

        # die_on_exit: the JVM also ends when this Python process does (its stdin closes).
        port, process = launch_gateway(
            classpath=JAR_PATH,
            javaopts=[f"-Xmx{heap}"],
            java_path=java,
            die_on_exit=True,
            cwd=BASEPATH,
            return_proc=True,
        )
        try:
            parameters = GatewayParameters(port=port, auto_field=True)
            gateway = JavaGateway(gateway_parameters=parameters, java_process=process)
            return cls(gateway, process)
        except BaseException:
            process.kill()
            process.wait()
            raise

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def load(self, task_name: str, variation: int, simplifications: str, gold_path: bool) -> None:
        self.server.load(task_name, variation, simplifications, gold_path)

    def step(self, action: str) -> str:
        return str(self.server.step(action))

    def score(self) -> float:
        """The task score, 0-1 (negative when the task was failed irrecoverably)."""
        return float(self.server.getScore())

    def completed(self) -> bool:
        return bool(self.server.getCompleted())

    def task_description(self) -> str:
        return str(self.server.freeActionTaskDesc())

    def valid_actions(self) -> list[str]:
        return list(self.server.getValidActionObjectCombinations())

    def gold_path(self) -> list[str]:
        return list(self.server.getGoldActionSequence())

    def split_variations(self, task_name: str) -> dict[str, list[int]]:
        # The split functions answer for the loaded task.
        self.load(task_name, 0, "", False)
        return {
            "train": list(self.server.getVariationsTrain()),
            "dev": list(self.server.getVariationsDev()),
            "test": list(self.server.getVariationsTest()),
        }

    def close(self) -> None:
        """End the JVM: ask py4j to shut down, then close its stdin (die_on_exit), then kill if needed."""
        with contextlib.suppress(*SIMULATOR_ERRORS):  # already dead: the process is reaped below
            self._gateway.shutdown()
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
