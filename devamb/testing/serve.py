"""The engine process a test suite starts: `python -m devamb.testing.serve PROFILE WORKDIR
[--free-ports]`. Like `devamb up --headless --reset --lifeline`, with the engine's files in
WORKDIR (a temp folder, so that many engines may run for one profile: one per pytest-xdist
worker) and, with --free-ports, every listener on a free port the kernel picks (status tells
which). The profile is read where it is, so its relative paths (mocks, protos, certs) hold."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from devamb.control.workdir import Workdir
from devamb.engine.assembly import Profile, load_profile
from devamb.engine.runner import run_engine
from devamb.profile import ProfileError
from devamb.profile.schema import ListenAddress


def with_free_ports(profile: Profile) -> Profile:
    """The profile with every listener on port 0 (its host kept)."""
    services = {
        name: dataclasses.replace(spec, listen=ListenAddress(spec.listen.host, 0))
        for name, spec in profile.services.items()
    }
    return dataclasses.replace(profile, services=services)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[2:] not in ([], ["--free-ports"]):
        print("usage: python -m devamb.testing.serve PROFILE WORKDIR [--free-ports]",
              file=sys.stderr)
        return 2
    try:
        profile = load_profile(Path(argv[0]).resolve())
    except ProfileError as exc:
        print(exc, file=sys.stderr)
        return 1
    if argv[2:]:
        profile = with_free_ports(profile)
    return run_engine(profile, Workdir(Path(argv[1])), reset=True, lifeline=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
