"""Run ``python -m broker`` under cProfile with a CPU-time clock (idle waits cost nothing).

    CPROF_OUT=/tmp/broker.prof python bench/cprofile_run.py --port 1026 ...

Profiling starts on SIGUSR1 and stops on SIGUSR2, which writes the stats to ``CPROF_OUT``, so a
benchmark profiles only its measured phase (not start-up or seeding).
"""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this tree's broker package


def main() -> None:
    out = os.environ["CPROF_OUT"]
    prof = cProfile.Profile(time.process_time)

    def begin(*_: Any) -> None:
        prof.enable()

    def end(*_: Any) -> None:
        prof.disable()
        prof.dump_stats(out)

    signal.signal(signal.SIGUSR1, begin)
    signal.signal(signal.SIGUSR2, end)
    sys.argv = ["broker", *sys.argv[1:]]
    runpy.run_module("broker", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
