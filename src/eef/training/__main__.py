"""``python -m eef.training JOB RESULT``: one of the processes torchrun starts for :func:`eef.training.jobs.train`."""

import os
import sys
from pathlib import Path

from eef import console
from eef.training.processes import end_with_parent


def _main() -> int:
    end_with_parent()  # its parent is torchrun: this process ends when torchrun does
    if console.quiet():  # as `eef` itself: Hugging Face's own bars follow ours, read when transformers loads
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from eef.training.jobs import main

    return main(Path(sys.argv[1]), Path(sys.argv[2]))


if __name__ == "__main__":
    sys.exit(_main())
