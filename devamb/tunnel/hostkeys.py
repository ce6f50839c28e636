"""Strict host key checking against known_hosts, as OpenSSH does it, with messages that show
the fingerprint and the line to add; `accept_new` records an unknown host's key (never a
changed one)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devamb.tunnel.spec import BastionSpec
from devamb.tunnel.ssh import asyncssh as ssh

if TYPE_CHECKING:
    import asyncssh


def default_known_hosts() -> str:
    return str(Path("~/.ssh/known_hosts").expanduser())


class HostKeyCheck:
    """One connection attempt's host key decision; `refusal()` says why it was refused."""

    def __init__(self, spec: BastionSpec) -> None:
        self.spec = spec
        self.path = spec.known_hosts or default_known_hosts()
        self.seen: str | None = None  # the fingerprint the server offered, when asked
        self.accepted: str | None = None  # a notice: accept_new recorded a key
        self.lost: Exception | None = None  # why the connection ended, once it has
        self._refusal: str | None = None

    def known_hosts_argument(self) -> Any:
        return self.path if os.path.exists(self.path) else b""

    def refusal(self) -> str | None:
        return self._refusal

    def client_factory(self) -> asyncssh.SSHClient:
        check = self

        class Client(ssh().SSHClient):  # type: ignore[misc]
            def validate_host_public_key(
                self, host: str, addr: str, port: int, key: asyncssh.SSHKey
            ) -> bool:
                return check.decide(host, addr, port, key)

            def connection_lost(self, exc: Exception | None) -> None:
                check.lost = exc  # e.g. "Server not responding to keepalive"

        return Client()

    def decide(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Called only for a key known_hosts does not trust."""
        self.seen = key.get_fingerprint("sha256")
        line = known_hosts_line(host, port, key)
        trusted: tuple[asyncssh.SSHKey, ...] = ()
        if os.path.exists(self.path):
            try:
                trusted = tuple(ssh().match_known_hosts(self.path, host, addr, port)[0])
            except (OSError, ValueError):
                trusted = ()
        if trusted:
            known = ", ".join(k.get_fingerprint("sha256") for k in trusted)
            self._refusal = (
                f"host key mismatch for {_where(host, port)}: the server offered {self.seen}, "
                f"{self.path} has {known}; refused (if the host was rebuilt, check with its "
                f"owner and replace its line)"
            )
            return False
        if self.spec.accept_new:
            folder = os.path.dirname(self.path)
            if folder:
                os.makedirs(folder, mode=0o700, exist_ok=True)
            with open(self.path, "a", encoding="ascii") as file:
                file.write(line + "\n")
            self.accepted = (
                f"bastion {self.spec.name}: accepted the new host key of {_where(host, port)} "
                f"({self.seen}) and added it to {self.path}"
            )
            return True
        self._refusal = (
            f"unknown host key for {_where(host, port)} ({self.seen}); refused. After checking "
            f"the fingerprint, add this line to {self.path}: {line} "
            "(or set accept_new: true on the bastion)"
        )
        return False


def known_hosts_line(host: str, port: int, key: asyncssh.SSHKey) -> str:
    pattern = host if port in (22, 0, None) else f"[{host}]:{port}"
    public = key.export_public_key("openssh").decode("ascii").strip()
    return f"{pattern} {' '.join(public.split()[:2])}"


def _where(host: str, port: int) -> str:
    return host if port in (22, 0, None) else f"{host}:{port}"
