"""Instructions per unit of work, counted under valgrind's cachegrind: the in-process benches'
steady figure (the machine's load does not move it; cache and memory effects it misses).

A bench runs itself twice under cachegrind, with `few` and `many` units of work after the same
warm-up, and the difference is divided by `many - few`, so that start-up cancels out. The hash
seed is fixed, and the real interpreter is traced (valgrind follows no exec out of a shim).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable


def instructions_per(script: str, arguments: Callable[[int], list[str]], few: int,
                     many: int) -> int:
    """Instructions per unit: `script` run with `arguments(few)`, then `arguments(many)`."""
    if shutil.which("valgrind") is None:
        sys.exit("--instructions needs valgrind (Debian: apt install valgrind)")
    python = os.path.realpath(sys.executable)
    counts = []
    for units in (few, many):
        argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                "--cachegrind-out-file=/dev/null", python, script, *arguments(units)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stderr
        found = re.search(r"I\s+refs:\s+([\d,]+)", out)
        if found is None:
            sys.exit(f"no instruction count in valgrind's output:\n{out[-2000:]}")
        counts.append(int(found.group(1).replace(",", "")))
    return (counts[1] - counts[0]) // (many - few)
