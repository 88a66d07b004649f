"""``python -m eef.training.launcher ARGS``: torchrun with ARGS, ended when the process that started it ends
(``eef train --processes``, a run's ``cluster.train_processes``), and its processes with it."""

import os
import sys

from eef.training.processes import PARENT_VARIABLE, end_with_parent


def _main() -> None:
    end_with_parent()
    os.environ[PARENT_VARIABLE] = str(os.getpid())  # the processes torchrun starts end with it in turn
    from torch.distributed.run import main as torchrun

    torchrun(sys.argv[1:])


if __name__ == "__main__":
    _main()
