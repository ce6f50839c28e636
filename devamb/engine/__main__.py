"""The engine's own process: `python -m devamb.engine PROFILE [--reset] [--grace SECONDS]
[--lifeline] [--toxiproxy-api HOST:PORT]`.

`devamb up --headless` checks that no engine runs for the profile, then execs this in its
place (the same pid, the same interpreter options), so the engine does not carry the command
line's code: click and devamb.cli were 1.5 MiB of the demo engine's RSS after start (issue 22).
The profile is read here: its problems are reported as `devamb up` reports them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from devamb.control.workdir import Workdir
from devamb.engine.assembly import load_profile
from devamb.engine.runner import run_engine
from devamb.profile import ProfileError

USAGE = ("usage: python -m devamb.engine PROFILE [--reset] [--grace SECONDS] [--lifeline] "
         "[--toxiproxy-api HOST:PORT]")
EXIT_BAD_INPUT = 1  # as devamb.cli.common's


def main(argv: Sequence[str]) -> int:
    path: str | None = None
    flags = {"--reset": False, "--lifeline": False}
    values: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        if arg in flags:
            flags[arg] = True
        elif arg in ("--grace", "--toxiproxy-api") and (value := next(args, None)) is not None:
            values[arg] = value
        elif path is None and not arg.startswith("-"):
            path = arg
        else:
            path = None
            break
    if path is None:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        profile = load_profile(Path(path))
    except ProfileError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    grace = values.get("--grace")
    return run_engine(profile, Workdir.beside(Path(path)), reset=flags["--reset"],
                      grace=None if grace is None else float(grace),
                      lifeline=flags["--lifeline"], toxiproxy_api=values.get("--toxiproxy-api"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
