"""What part of a request keys a hash choice: `header:NAME | cookie:NAME | client_ip | path`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from devamb.profile.reader import Node

SOURCES = ("header", "cookie", "client_ip", "path")
H2_SOURCES = ("header", "cookie", "path")  # an HTTP/2 call is picked for before its client is


def sources_for(protocol: str) -> tuple[str, ...]:
    """The keys a service of `protocol` can pick by."""
    return H2_SOURCES if protocol in ("http2", "grpc") else SOURCES


class KeyedRequest(Protocol):
    """What a key reads of a request: an HTTP/1.1 exchange's (FrontRequest) or an HTTP/2
    call's head (proxy.h2request.H2Request)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def cookies(self) -> Mapping[str, str]: ...

    @property
    def remote(self) -> str | None: ...

    @property
    def path(self) -> str: ...


@dataclass(frozen=True)
class RequestKey:
    source: str  # header | cookie | client_ip | path
    name: str = ""  # the header or cookie name

    def __str__(self) -> str:
        return f"{self.source}:{self.name}" if self.name else self.source

    def of(self, request: KeyedRequest) -> str | None:
        """The key of this request, or None when the request does not carry it."""
        if self.source == "header":
            return request.headers.get(self.name)
        if self.source == "cookie":
            return request.cookies.get(self.name)
        if self.source == "client_ip":
            return request.remote
        return request.path


def parse_request_key(node: Node, allowed: tuple[str, ...] = SOURCES) -> RequestKey | None:
    """A key from the profile; `allowed` narrows the sources (TCP has no headers)."""
    text = node.string(interpolate=False)
    if text is None:
        return None
    source, _, name = text.partition(":")
    source, name = source.strip(), name.strip()
    forms = ", ".join(f"{s}:NAME" if s in ("header", "cookie") else s for s in allowed)
    if source == "client_ip" and allowed == H2_SOURCES:
        node.problem(f"HTTP/2 calls are routed by their request head, not by client_ip; "
                     f"expected {forms}")
        return None
    if source not in allowed:
        node.problem(f"{text!r} is not a request key; expected {forms}")
        return None
    if source in ("header", "cookie") and not name:
        node.problem(f"{text!r} needs a name: {source}:NAME")
        return None
    if source in ("client_ip", "path") and name:
        node.problem(f"{text!r}: {source} takes no name")
        return None
    return RequestKey(source, name)
