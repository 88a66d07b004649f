import subprocess
import sys

import pytest

# Tensors of 24 and 40 MiB allocated, filled and freed as a forward pass does; prints the page
# faults of four passes after four of warm-up.
SCRIPT = """
import resource, sys, torch
from eef.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def passes():
    for _ in range(4):
        torch.empty(6 << 20).fill_(1.0)
        torch.empty(10 << 20).fill_(1.0)
passes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
passes()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_memory_is_reused_instead_of_faulting_in_fresh_pages():
    fresh = page_faults("default")  # here every 4 KiB page of every tensor, every time: 65,536
    if fresh < 4 * 16_384 / 4:
        pytest.skip(f"{fresh} page faults without the change: this system maps larger pages or keeps them")
    assert page_faults("keep") < fresh / 4
