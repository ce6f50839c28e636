"""The profile's plain values: listen addresses, the base of every target kind's settings, what a
service records. A service's and the whole profile's settings, which hold fault and policy
settings too, are `devamb.service.spec.ServiceSpec` and `devamb.engine.assembly.Profile`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int  # 0 picks a free port (handy in tests)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")


@dataclass(frozen=True)
class TargetSpec:
    """Base of every target kind's settings; each kind lives in one module of devamb.targets."""

    KIND: ClassVar[str] = ""
    name: str

    @property
    def kind(self) -> str:
        return self.KIND

    def describe(self) -> str:
        """Where it points, for status output; never contains secrets."""
        return self.KIND

    def watched_files(self) -> tuple[Path, ...]:
        """Files the target reads (a mock file, ...): a change to one reloads the profile."""
        return ()


@dataclass(frozen=True)
class InspectSpec:
    """What a service records: body previews, how many exchanges, what to mask."""

    bodies: int = 64 * 1024  # bytes of each body kept as a preview
    keep: int = 5000  # exchanges kept for this service
    redact: tuple[str, ...] = ()  # more header / JSON field names to mask
    redaction: bool = True  # False: show named headers/fields (${VAR} secrets stay masked)
