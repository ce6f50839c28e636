"""`devamb doctor`: what would stop devamb from running here, each check a line with a fix.

Every check is bounded in time (the engine's socket, the Docker engine and each bastion get a
few seconds each), so doctor answers even when something hangs. Exit 1 when a check fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from devamb.cli.common import profile_option, profile_path
from devamb.cli.launcher import find_engine
from devamb.control.protocol import Status
from devamb.control.workdir import UnsafeSocketDir, Workdir
from devamb.profile import ProfileError, TargetSpec, display_path

if TYPE_CHECKING:
    from devamb.engine.assembly import Profile

WAIT = 5.0  # s: the longest any one check waits (socket, Docker, a bastion)


@dataclass(frozen=True)
class Check:
    level: str  # ok | warn | fail | info
    what: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level:<5} {self.what}: {self.detail}"
        return f"{text}\n      fix: {self.fix}" if self.fix else text


def python_check() -> Check:
    """Informational: requires-python (3.11+) is enforced by the installer."""
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("ok", "python", f"{version} ({sys.executable})")


def uvloop_check() -> Check:
    try:
        import uvloop  # noqa: F401  (the engine's faster event loop)
    except ImportError:
        return Check("warn", "uvloop", "not installed: the engine runs on asyncio's own loop",
                     "pip install uvloop (not available on Windows)")
    return Check("ok", "uvloop", "installed")


def targets_of(value: Any) -> Iterator[TargetSpec]:
    """Every target in `value`, with the ones inside pools, splits and shards."""
    if isinstance(value, TargetSpec):
        yield value
        for field in dataclasses.fields(value):
            yield from targets_of(getattr(value, field.name))
    elif isinstance(value, dict | list | tuple):
        for item in value.values() if isinstance(value, dict) else value:
            yield from targets_of(item)


def uses_docker(profile: Profile) -> bool:
    return any(t.kind == "docker" for s in profile.services.values()
               for t in targets_of(dict(s.targets)))


async def docker_check(needed: bool) -> Check:
    def ping() -> None:
        import docker

        docker.from_env(timeout=int(WAIT)).ping()

    try:
        await asyncio.wait_for(asyncio.to_thread(ping), WAIT + 1)
    except Exception as exc:  # docker's errors, a missing socket, a timeout: all say "no"
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not needed:
            return Check("info", "docker", f"not reachable ({why}); this profile has no "
                                           f"docker targets")
        return Check("fail", "docker", f"the engine is not reachable: {why}",
                     "start Docker (or set DOCKER_HOST); check `docker info` works")
    return Check("ok" if needed else "info", "docker", "the engine answers")


def _port(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def port_checks(profile: Profile, status: Status | None) -> Iterator[Check]:
    held = {_port(s["listen"]) for s in status["services"]} if status else set()
    for service in profile.services.values():
        address = service.listen
        what = f"port {address} ({service.name})"
        if address.port == 0:
            yield Check("ok", what, "a free port is picked at start")
        elif address.port in held:
            yield Check("ok", what, "held by this project's engine")
        else:
            yield port_free(address.host, address.port, what)


def port_free(host: str, port: int, what: str) -> Check:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the engine binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return Check("fail", what, "in use by another process",
                             f"stop it (`lsof -i :{port}` or `ss -ltnp` names it), or change "
                             f"`listen:` in the profile")
            return Check("fail", what, f"cannot bind: {exc.strerror or exc}",
                         "use a local address (127.0.0.1) in `listen:`")
    return Check("ok", what, "free")


async def socket_check(workdir: Workdir) -> tuple[Check, Status | None]:
    try:
        workdir.check_socket_dir()
    except UnsafeSocketDir as exc:
        return Check("fail", "control socket", str(exc), "fix the folder's owner or mode"), None
    found = await find_engine(workdir, timeout=WAIT)
    if found.status is not None:
        return Check("ok", "control socket",
                     f"the engine (pid {found.pid}) answers on {workdir.socket}"), found.status
    if found.pid is not None:
        return Check("fail", "control socket",
                     f"engine pid {found.pid} is alive but not answering ({found.problem})",
                     "`devamb down` stops it"), None
    if workdir.socket.exists() or workdir.pid.exists():
        return Check("warn", "control socket", "a stopped engine left its socket or pid file",
                     "the next `devamb up` or `devamb down` cleans them up"), None
    return Check("ok", "control socket", "no engine running for this profile"), None


async def bastion_checks(profile: Profile) -> list[Check]:
    """Each bastion connected to (all at once, so the wait is WAIT whatever their number)."""
    if not profile.bastions:
        return []
    from devamb.tunnel.channel import TunnelDown
    from devamb.tunnel.registry import Tunnels

    logging.getLogger("devamb.tunnel").disabled = True  # its warnings would repeat the lines
    tunnels = Tunnels()
    await tunnels.update(profile.bastions)

    async def check(name: str) -> Check:
        bastion = tunnels.get(name)
        assert bastion is not None
        what = f"bastion {name} ({bastion.spec.describe()})"
        try:
            await asyncio.wait_for(bastion.connection(WAIT), WAIT + 1)
        except (TunnelDown, TimeoutError) as exc:
            why = str(exc).removeprefix("tunnel-down: ").removeprefix(f"bastion {name}: ")
            return Check("fail", what, why or f"no SSH connection within {WAIT:g}s",
                         "check the host, user and key; `ssh` to it by hand")
        return Check("ok", what, "reachable, authenticated")

    try:
        return list(await asyncio.gather(*(check(name) for name in profile.bastions)))
    finally:
        await tunnels.close()


async def profile_checks(path: Path) -> list[Check]:
    if not path.exists():
        return [Check("warn", "profile", f"none at {display_path(path)}",
                      "`devamb init` writes one here; `-p PROFILE` names another")]
    from devamb.engine.assembly import load_profile  # the whole loader: only when doctor runs

    try:
        profile = load_profile(path)
    except ProfileError as exc:
        return [Check("fail", "profile", f"{display_path(path)} has problems:\n{exc}",
                      f"`devamb validate {display_path(path)}` lists them")]
    checks = [Check("ok", "profile", f"{display_path(path)} ({len(profile.services)} services)")]
    checks.append(await docker_check(uses_docker(profile)))
    workdir = Workdir.beside(path)
    sock, status = await socket_check(workdir)
    checks.append(sock)
    checks += port_checks(profile, status)
    checks += await bastion_checks(profile)
    return checks


@click.command()
@profile_option
def doctor(profile_name: str | None) -> None:
    """Check this machine and the profile: Python, uvloop, Docker, ports, socket, bastions."""
    path = profile_path(profile_name)
    checks = [python_check(), uvloop_check(), *asyncio.run(profile_checks(path))]
    for check in checks:
        click.echo(check.line())
    if any(c.level == "fail" for c in checks):
        sys.exit(1)
