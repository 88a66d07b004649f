"""``python -m eef.training JOB RESULT``: one of the processes torchrun starts for :func:`eef.training.jobs.train`."""

import sys
from pathlib import Path

from eef.training.jobs import main

if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
