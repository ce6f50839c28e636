"""`tls: {cert: FILE, key: FILE}` on http, http2 and grpc services: the listener terminates TLS.

The files are named relative to the profile and checked when it is loaded (readable, PEM, the
key matching the certificate), so that `validate` finds what `up` would fail on. ALPN offers
`h2` on http2 and grpc services, and `h2` then `http/1.1` on http services (a client choosing
h2 is served as HTTP/2 there, see proxy/sniff.py)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from devamb.profile.reader import Node

KEYS = ("cert", "key")
TLS_PROTOCOLS = ("http", "http2", "grpc")


@dataclass(frozen=True)
class ListenerTls:
    cert: str  # absolute paths
    key: str

    def context(self, alpn: list[str]) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        context.set_alpn_protocols(alpn)
        return context


def alpn_for(protocol: str) -> list[str]:
    return ["h2", "http/1.1"] if protocol == "http" else ["h2"]


def parse_listener_tls(node: Node, protocol: str) -> ListenerTls | None:
    """The service's `tls:` mapping; None after a problem (reported at its place)."""
    if protocol not in TLS_PROTOCOLS:
        node.problem(
            f"'tls' applies to {', '.join(TLS_PROTOCOLS)} services; a {protocol} service "
            "relays bytes (TLS goes through it untouched)", key=True,
        )
        return None
    if not node.mapping(KEYS, required=KEYS):
        return None
    cert = _readable(node.child("cert"), "certificate")
    key = _readable(node.child("key"), "key")
    if cert is None or key is None:
        return None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "MISMATCH" in reason.upper():
            node.child("key").problem(
                f"key {node.child('key').value!r} does not match certificate "
                f"{node.child('cert').value!r}"
            )
        else:
            node.problem(f"the certificate and key cannot be used: {reason}")
        return None
    return ListenerTls(cert, key)


def _readable(node: Node, what: str) -> str | None:
    text = node.string()
    if text is None:
        return None
    path = Path(node.reader.source.file).resolve().parent / Path(text).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        node.problem(f"cannot read {what} file {node.value!r}: {exc.strerror or exc}")
        return None
    if b"-----BEGIN" not in data:
        node.problem(f"{what} file {node.value!r} is not PEM (no -----BEGIN line)")
        return None
    return str(path)
