"""Where the Toxiproxy API listens: `PORT` or `HOST:PORT`, on a loopback address only."""

from __future__ import annotations

import re

from devamb.profile.reader import Node, type_name
from devamb.profile.schema import ListenAddress

DEFAULT = "127.0.0.1:8474"  # Toxiproxy's own default port


def parse_api_address(text: str) -> ListenAddress:
    """ValueError (a message for the user) unless `text` is a loopback HOST:PORT or a PORT."""
    m = re.fullmatch(r"(?:\[([^\]]+)\]|([^:\[\]]+)):(\d+)", text) or re.fullmatch(
        r"()()(\d+)", text)
    if not m:
        raise ValueError(f"{text!r} is not a PORT or HOST:PORT (e.g. {DEFAULT})")
    address = ListenAddress(m.group(1) or m.group(2) or "127.0.0.1", int(m.group(3)))
    if address.port > 65535:
        raise ValueError(f"port {address.port} is out of range 0..65535")
    if not address.is_loopback:
        raise ValueError(f"the Toxiproxy API listens on loopback only (127.0.0.1, localhost "
                         f"or ::1), not {address.host!r}: it can change what this machine's "
                         f"services connect to")
    return address


def parse_profile_key(node: Node) -> str | None:
    """The profile's `toxiproxy_api:` (true for the default address, a PORT or HOST:PORT)."""
    value = node.value
    if value is True:
        return DEFAULT
    if value is False:
        return None
    if isinstance(value, int | str):
        try:
            return str(parse_api_address(str(value)))
        except ValueError as exc:
            node.problem(str(exc))
            return None
    node.problem(f"expected true, a PORT or HOST:PORT (e.g. {DEFAULT}), got {type_name(value)}")
    return None
