"""URL targets: `http://…`, `https://…` (HTTP services) and `tcp://HOST:PORT` (TCP services).

`http://user:password@host/` sends `Authorization: Basic …` to the upstream (never userinfo in
Host or in a recorded URL); the password is masked like a `${VAR}` value. A tcp:// URL cannot
carry credentials, and a URL with credentials cannot be combined with an Authorization header.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from devamb.cluster.endpoint import split_userinfo
from devamb.cluster.reachability import Reachability
from devamb.inspect.masking import MASK
from devamb.profile.reader import Node
from devamb.profile.schema import TargetSpec
from devamb.proxy.dial import Dial
from devamb.proxy.forward import forward_http
from devamb.proxy.upstream import UpstreamPool, tls_context
from devamb.proxy.websocket_client import WebSocketClient
from devamb.targets.base import H2Destination, Target, TargetContext

if TYPE_CHECKING:
    from yarl import URL

    from devamb.inspect.exchange import Exchange
    from devamb.proxy.h2conn import H2Headers
    from devamb.proxy.request import FrontRequest
    from devamb.proxy.response import StreamResponse

SCHEMES = {  # http2 and grpc: h2c (http://) or h2 over TLS with ALPN (https://)
    "http": ("http", "https"), "tcp": ("tcp",), "http2": ("http", "https"),
    "grpc": ("http", "https"),
}
KEYS = ("url", "headers", "tls", "via")
TLS_KEYS = ("verify", "ca")


@dataclass(frozen=True)
class UrlTargetSpec(TargetSpec):
    KIND = "url"
    url: str = ""  # expanded; may hold secrets (and user:password@, see split_userinfo)
    written: str = ""  # as written in the profile, ${VAR} unexpanded, password hidden
    headers: Mapping[str, str] = field(default_factory=dict)  # with Authorization from userinfo
    tls_verify: bool = True
    tls_ca: str | None = None
    via: str | None = None  # a bastion's name (or inline ssh:// address): checked by assembly

    def describe(self) -> str:
        return f"{self.written} via {self.via}" if self.via else self.written


def parse(name: str, node: Node, protocol: str) -> UrlTargetSpec | None:
    headers: dict[str, str] = {}
    verify, ca = True, None
    via = None
    url_node = node
    before = len(node.reader.problems)
    if isinstance(node.value, dict):
        node.mapping(KEYS, required=("url",))  # headers and tls are checked all the same
        url_node = node.child("url")
        if node.has("headers"):
            headers = node.child("headers").string_map() or {}
        if node.has("tls"):
            verify, ca = parse_tls(node.child("tls"))
        if node.has("via"):
            via = node.child("via").string(interpolate=False)
        if not node.has("url"):
            return None
    text = url_node.string()
    if text is None:
        return None
    written = hide_password(str(url_node.value))
    parts = urlsplit(text)
    allowed = SCHEMES[protocol]
    if parts.scheme not in allowed:
        hint = {
            "tcp": " (a tcp service needs tcp://HOST:PORT)",
            "http2": " (http:// is h2c, https:// is HTTP/2 over TLS)",
            "grpc": " (http:// is h2c, https:// is HTTP/2 over TLS)",
        }.get(protocol, "")
        url_node.problem(
            f"{written!r} is not a URL a {protocol} service can use: expected "
            f"{' or '.join(s + '://' for s in allowed)}{hint}"
        )
        return None
    try:
        port = parts.port
    except ValueError:
        url_node.problem(f"{written!r} has an invalid port")
        return None
    if not parts.hostname:
        url_node.problem(f"{written!r} has no host")
        return None
    if protocol == "tcp" and (port is None or parts.path not in ("", "/")):
        url_node.problem(f"{written!r} must be exactly tcp://HOST:PORT")
        return None
    if node.has("tls") and node.child("tls").has("ca") and parts.scheme != "https":
        node.child("tls").problem("tls settings apply to https:// URLs only")
    if "@" in parts.netloc:
        authorization = _credentials(url_node, node, parts.netloc, written, protocol, headers)
        if authorization is None:
            return None
        headers = {**headers, "Authorization": authorization}
    if len(node.reader.problems) > before:
        return None
    return UrlTargetSpec(name, text, written, headers, verify, ca, via)


def parse_tls(tls: Node) -> tuple[bool, str | None]:
    """`tls: {verify, ca}`: (verify, the CA file's absolute path); problems are reported."""
    verify, ca = True, None
    if tls.mapping(TLS_KEYS):
        if tls.has("verify"):
            verify = tls.child("verify").boolean() is not False
        if tls.has("ca"):
            ca = ca_file(tls.child("ca"))
    return verify, ca


def ca_file(node: Node) -> str | None:
    """The CA bundle `node` names, relative to the profile's folder, checked now (it exists, is
    readable, holds PEM certificates) so that `validate` finds what `up` would fail on."""
    text = node.string()
    if text is None:
        return None
    written = str(node.value)  # as written: a ${VAR} is not expanded in messages
    path = Path(node.reader.source.file).resolve().parent / Path(text).expanduser()
    try:
        with open(path, "rb"):
            pass
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:
        node.problem(f"CA file {written!r} holds no usable PEM certificate ({exc.reason or exc})")
        return None
    except OSError as exc:
        node.problem(f"cannot read CA file {written!r}: {exc.strerror or exc}")
        return None
    return str(path)


def _credentials(
    url_node: Node, node: Node, netloc: str, written: str, protocol: str,
    headers: Mapping[str, str],
) -> str | None:
    """The Authorization value for `user:password@` in a URL, or None after a problem."""
    if protocol == "tcp":
        url_node.problem(
            f"{written!r}: a tcp:// URL cannot carry credentials (user:password@); "
            "devamb relays the bytes, so authenticate in the protocol itself"
        )
        return None
    if any(name.lower() == "authorization" for name in headers):
        url_node.problem(
            f"{written!r} has credentials (user:password@) and headers sets Authorization "
            "too: keep one"
        )
        return None
    userinfo = netloc.rpartition("@")[0]
    user, _, password = (unquote(p) for p in userinfo.partition(":"))
    secrets = url_node.reader.interpolator
    secrets.remember(password)  # written literally, it is as secret as a ${VAR} value
    secrets.remember(f"{user}:{password}")
    return split_userinfo(f"http://{netloc}")[1]


def hide_password(url: str) -> str:
    """`url` with a literal password replaced by the mask (a `${VAR}` reference is kept)."""
    scheme, sep, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    userinfo, at, _ = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (sep and at and colon and password) or password.startswith("${"):
        return url
    return f"{scheme}://{user}:{MASK}{rest[len(userinfo):]}"


KEPT_URLS = 256  # upstream URLs a target keeps by request path


class UrlTarget(Target):
    """Forwards to one upstream URL through a keep-alive connection pool of its own."""

    spec: UrlTargetSpec
    reach: Reachability  # always probed: one upstream address

    def __init__(self, spec: TargetSpec, context: TargetContext) -> None:
        super().__init__(spec, context)
        assert isinstance(spec, UrlTargetSpec)
        parts = urlsplit(split_userinfo(spec.url)[0])  # credentials travel in spec.headers
        self._host = parts.hostname or ""
        self._port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        # origin and prefix as yarl writes them (a default port dropped): the recorded URL is
        # this and the raw path, which yarl keeps as given; set with the first upstream URL
        # (yarl is imported at the first exchange: ~1 MiB of an engine's start, issue 22)
        self._written: str | None = None
        self._written_set = False
        self._pool: UpstreamPool | None = None
        # upstream URLs by request path (upstream_url), each with its text as recorded (one
        # str every record of that path shares, where a str each is 80-odd bytes a record)
        self._urls: dict[str, tuple[URL, str | None]] = {}
        self._websockets = WebSocketClient()
        self._h2_tls: ssl.SSLContext | None = None  # made at the first HTTP/2 call over TLS
        self._h2_place: H2Destination | None = None  # the same for every call: made once
        self.reach = Reachability(self._host, self._port)
        self._dial: Dial | None = None  # through a bastion (`via:`), set at start

    async def start(self) -> None:
        self._dial = self.reach.dial = self.context.dial_via(self.spec.via)
        self._h2_place = None
        if self.context.protocol == "http":
            if not self.spec.url.startswith("https:"):
                self._http_pool()
            # else made at the first exchange or status probe: a TLS context with the CA store
            # loaded is ~2 MiB and tens of ms, for a target that may never be switched to
        elif self._origin.startswith("https:"):  # http2, grpc: probes check the handshake too
            self._h2_tls = self._new_h2_tls()
            self.reach.ssl = self._h2_tls

    def _http_pool(self) -> UpstreamPool:
        tls = self._ssl()  # one context (loading the CA store is slow) for both kinds
        self._pool = UpstreamPool(self._host, self._port, tls, self._dial)
        self._pool.observer = self.reach.observe
        self.reach.ssl = tls
        self._websockets = WebSocketClient(tls, self._dial)
        return self._pool

    def refresh(self) -> asyncio.Task[None] | None:
        if self._pool is None and self.context.protocol == "http":
            self._http_pool()  # an https probe makes the TLS handshake: its context first
        return super().refresh()

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.spec.url.startswith("https:"):
            return None
        return tls_context(self.spec.tls_ca, self.spec.tls_verify)

    def _new_h2_tls(self) -> ssl.SSLContext:
        from devamb.proxy.h2upstream import h2_tls  # (h2: with HTTP/2 calls only, issue 22)

        return h2_tls(self.spec.tls_ca, self.spec.tls_verify)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        await self._websockets.close()
        await self.reach.close()

    def injected_headers(self) -> Mapping[str, str]:
        return self.spec.headers

    async def h2_destination(self, headers: H2Headers) -> H2Destination:
        if self._h2_place is not None:
            return self._h2_place
        tls = None
        if self._origin.startswith("https:"):
            if self._h2_tls is None:
                self._h2_tls = self._new_h2_tls()
            tls = self._h2_tls
        self._h2_place = H2Destination(
            self._host, self._port, self._origin.split("://", 1)[1], tls=tls,
            server_hostname=self._host if tls is not None else None, headers=self.spec.headers,
            via=self.spec.via, dial=self._dial,
        )
        return self._h2_place

    def upstream_url(self, raw_path: str) -> URL:
        """The upstream URL of a request path; the recent ones are kept (yarl's parsing costs
        more than the rest of the header work, and an app asks the same paths again)."""
        kept = self._urls.get(raw_path)
        return (kept or self._new_url(raw_path))[0]

    def _new_url(self, raw_path: str) -> tuple[URL, str | None]:
        """`raw_path`'s upstream URL and its text as recorded, kept (`upstream_url`)."""
        from yarl import URL  # (kept in sys.modules after the first exchange)

        if not self._written_set:
            self._written_set = True
            try:
                self._written = str(URL(f"{self._origin}{self._prefix}/", encoded=True))[:-1]
            except ValueError:  # (then the exchange's URL object is asked, each time)
                self._written = None
        urls = self._urls
        if len(urls) >= KEPT_URLS:
            urls.clear()
        written = self._written
        kept = urls[raw_path] = (URL(f"{self._origin}{self._prefix}{raw_path}", encoded=True),
                                 None if written is None else f"{written}{raw_path}")
        return kept

    def handle_http(
        self, request: FrontRequest, exchange: Exchange
    ) -> Coroutine[Any, Any, StreamResponse]:  # (forward_http's own: one coroutine less)
        raw_path = request.raw_path
        url, text = self._urls.get(raw_path) or self._new_url(raw_path)
        return forward_http(
            self._pool or self._http_pool(),
            request,
            url,
            exchange,
            extra_headers=self.spec.headers,
            keep_host=self.context.keep_host,
            timeout=self.context.timeout,
            websockets=self._websockets,
            url_text=text,
        )

    async def tcp_address(self) -> tuple[str, int]:
        return self._host, self._port

    def details(self) -> dict[str, Any]:
        details = super().details()
        if self.spec.via:
            details["via"] = self.spec.via  # the bastion, for the target detail screen
        return details

    def dial(self) -> Dial | None:
        return self._dial
