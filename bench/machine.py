"""Describe the machine and the software under test, for the top of the report."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

from peers import REPO

Info = dict[str, str | int | None]


def _version(argv: list[str], pattern: str, need_success: bool = False) -> str | None:
    """The first group of `pattern` in a command's stdout+stderr (many tools print their version
    on stderr), or None when the tool is missing or says nothing that matches."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if need_success and done.returncode != 0:
        return None
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else None


def _package(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _devamb_version() -> str:
    argv = ["git", "-C", str(REPO), "describe", "--always", "--dirty"]
    return _version(argv, r"(\S+)", need_success=True) or "no commit yet"


def describe() -> Info:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_mib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20,
        "os": _os_name(),
        "kernel": platform.release(),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "aiohttp": _package("aiohttp"),
        "uvloop": _package("uvloop"),
        "devamb": _devamb_version(),
        "nginx": _version(["nginx", "-v"], r"nginx/(\S+)"),
        "wrk": _version(["wrk", "-v"], r"wrk (\S+)"),
        "socat": _version(["socat", "-V"], r"socat version (\S+)"),
        "haproxy": _version(["haproxy", "-v"], r"HA-?Proxy version (\S+)"),
        "envoy": _version(["envoy", "--version"], r"version: \S+?/(\d[^/\s]*)"),
        "mitmproxy": _version(["mitmdump", "--version"], r"Mitmproxy: (\S+)"),
    }


def markdown(machine: Info) -> str:
    installed = {k: v for k, v in machine.items() if v is not None}
    missing = sorted(k for k, v in machine.items() if v is None)
    lines = [
        f"**Machine:** {machine['cpu']}, {machine['cores']} cores "
        f"({machine['cpus_usable']} usable), {machine['memory_mib']} MiB, {machine['os']}, "
        f"kernel {machine['kernel']}, load average at start {machine['load_average']}",
        "**Software:** "
        + ", ".join(
            f"{key} {installed[key]}"
            for key in (
                "python",
                "aiohttp",
                "uvloop",
                "nginx",
                "wrk",
                "socat",
                "haproxy",
                "mitmproxy",
                "devamb",
            )
            if key in installed
        ),
    ]
    if missing:
        lines.append("**Not installed:** " + ", ".join(missing))
    return "  \n".join(lines)
