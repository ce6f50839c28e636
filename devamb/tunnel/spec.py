"""The profile's `bastions:` section and the `via:` of targets: validated values, no I/O
beyond checking the files they name."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from devamb.profile.reader import Node, type_name

KEYS = (
    "host", "port", "user", "identity_file", "known_hosts", "accept_new", "jump", "keepalive",
    "passphrase", "password",
)
SECRET_KEYS = ("passphrase", "password")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ONLY_VAR = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
DEFAULT_KEEPALIVE = 15.0


@dataclass(frozen=True)
class BastionSpec:
    """One SSH bastion. `host` may be a `~/.ssh/config` alias: asyncssh applies the config
    (HostName, User, Port, IdentityFile, ProxyJump) as OpenSSH would."""

    name: str
    host: str
    port: int | None = None  # None: from ~/.ssh/config, else 22
    user: str | None = None
    identity_file: str | None = None  # absolute path; None: ssh-agent and the default keys
    known_hosts: str | None = None  # absolute path; None: ~/.ssh/known_hosts
    accept_new: bool = False  # like StrictHostKeyChecking=accept-new
    jump: tuple[str, ...] = ()  # bastions to hop through first, in order
    keepalive: float = DEFAULT_KEEPALIVE  # s between keepalive requests (0: none)
    passphrase: str | None = None  # a secret (from ${VAR} only)
    password: str | None = None  # a secret (from ${VAR} only)

    def describe(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{self.host}{port}"


def parse_bastions(node: Node) -> dict[str, BastionSpec]:
    """Every bastion of `bastions:`; `jump` names are checked against the others."""
    if not isinstance(node.value, dict):
        node.problem(f"expected a mapping of bastions, got {type_name(node.value)}")
        return {}
    found: dict[str, BastionSpec] = {}
    for name, child in node.items():
        if not NAME.match(name):
            child.problem(f"bastion name {name!r} may use letters, digits, '_', '.', '-'", key=True)
            continue
        spec = parse_bastion(name, child)
        if spec is not None:
            found[name] = spec
    for name, spec in list(found.items()):
        jumps = node.child(name).child("jump")
        for i, hop in enumerate(spec.jump):
            if hop not in found and hop not in _listed(node):
                jumps.child(i).problem(f"{hop!r} is not a bastion; known: {', '.join(found)}")
                found.pop(name, None)
            elif hop == name:
                jumps.child(i).problem(f"bastion {name!r} cannot jump through itself")
                found.pop(name, None)
    return found


def _listed(node: Node) -> list[str]:
    return list(node.value) if isinstance(node.value, dict) else []


def parse_bastion(name: str, node: Node) -> BastionSpec | None:
    """One bastion: a mapping, or `ssh://user@host:port`."""
    if isinstance(node.value, str):
        return _from_url(name, node)
    before = len(node.reader.problems)
    if not node.mapping(KEYS, required=("host",)):
        return None
    host = node.child("host").string()
    port = node.child("port").integer(low=1, high=65535) if node.has("port") else None
    user = node.child("user").string() if node.has("user") else None
    identity = _key_file(node.child("identity_file")) if node.has("identity_file") else None
    known = _path(node.child("known_hosts")) if node.has("known_hosts") else None
    accept_new = node.child("accept_new").boolean() is True if node.has("accept_new") else False
    jump: tuple[str, ...] = ()
    if node.has("jump"):
        hops = node.child("jump")
        if isinstance(hops.value, str):
            jump = (hops.value,)
        elif isinstance(hops.value, list):
            jump = tuple(h for h in (e.string(interpolate=False) for e in hops.elements()) if h)
        else:
            hops.problem(f"expected a bastion name or a list of them, got {type_name(hops.value)}")
    keepalive = DEFAULT_KEEPALIVE
    if node.has("keepalive"):
        keepalive = node.child("keepalive").duration() or 0.0
    secrets = {key: _secret(node.child(key)) for key in SECRET_KEYS if node.has(key)}
    if len(node.reader.problems) > before or not host:
        return None
    return BastionSpec(
        name, host, port, user, identity, known, accept_new, jump, keepalive,
        secrets.get("passphrase"), secrets.get("password"),
    )


def _from_url(name: str, node: Node) -> BastionSpec | None:
    text = node.string()
    if text is None:
        return None
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        node.problem(f"{node.value!r} has an invalid port")
        return None
    if parts.scheme != "ssh" or not parts.hostname or parts.password is not None:
        node.problem(
            f"{node.value!r} is not an ssh://[USER@]HOST[:PORT] address (a password comes "
            "from a bastion's `password: ${VAR}`, never from the URL)"
        )
        return None
    user = unquote(parts.username) if parts.username else None
    return BastionSpec(name, parts.hostname, port, user)


def _secret(node: Node) -> str | None:
    """A password or passphrase: only ever a `${VAR}`, so that it is never in the profile."""
    if not isinstance(node.value, str) or not ONLY_VAR.match(node.value):
        node.problem(
            f"{node.name} must be exactly a ${{VAR}} reference (set in the environment or "
            ".env), never written in the profile"
        )
        return None
    return node.string()


def _path(node: Node) -> str | None:
    text = node.string()
    if text is None:
        return None
    base = Path(node.reader.source.file).resolve().parent
    return str(base / Path(text).expanduser())


def _key_file(node: Node) -> str | None:
    """An identity file that exists and that only its owner can read (as OpenSSH insists)."""
    path = _path(node)
    if path is None:
        return None
    written = str(node.value)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        node.problem(f"cannot read identity file {written!r}: {exc.strerror or exc}")
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        node.problem(
            f"identity file {written!r} is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"OpenSSH refuses such keys: chmod 600 {written}"
        )
        return None
    return path


def check_via(
    node: Node, bastions: dict[str, BastionSpec], listed: Collection[str] = ()
) -> str | None:
    """A target's `via:`: a bastion's name, or an inline `ssh://user@host:port` (added to
    `bastions` under its address). `listed`: every name under `bastions:`, valid or not.
    None after a problem."""
    text = node.string(interpolate=False)
    if text is None:
        return None
    if text.startswith("ssh://"):
        spec = _from_url(text, node)
        if spec is None:
            return None
        bastions.setdefault(spec.name, spec)
        return spec.name
    if text not in bastions and text in listed:
        return None  # a bastion with problems of its own, reported there
    if text not in bastions:
        known = ", ".join(n for n in bastions if not n.startswith("ssh://")) or "none defined"
        node.problem(
            f"{text!r} is not a bastion (known: {known}); define it under `bastions:` or "
            "write ssh://USER@HOST[:PORT]"
        )
        return None
    return text
