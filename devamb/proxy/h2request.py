"""An HTTP/2 call's request head, read the way keys read an HTTP/1.1 request (`FrontRequest`):
headers (no pseudo-headers), path, query and cookies, so that a hash, a sticky split or a shard
key picks per call as it picks per exchange."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from http.cookies import SimpleCookie
from urllib.parse import unquote

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from devamb.proxy.h2conn import H2Headers


class H2Request:
    def __init__(self, headers: H2Headers, remote: str | None = None) -> None:
        self.remote = remote  # not known where targets pick (h2_destination): None
        fields: CIMultiDict[str] = CIMultiDict()
        raw_path = "/"
        for key, value in headers:
            if key == b":path":
                raw_path = value.decode("latin-1")
            elif not key.startswith(b":"):
                fields.add(key.decode("latin-1"), value.decode("latin-1"))
        self.raw_path = raw_path
        self.headers = CIMultiDictProxy(fields)

    @cached_property
    def path(self) -> str:
        return unquote(self.raw_path.partition("?")[0])

    @cached_property
    def query(self) -> MultiDictProxy[str]:
        query = self.raw_path.partition("?")[2]
        if not query:
            return MultiDictProxy(MultiDict())
        return URL.build(path="/", query_string=query, encoded=True).query

    @cached_property
    def cookies(self) -> Mapping[str, str]:
        jar: SimpleCookie = SimpleCookie()
        for header in self.headers.getall("cookie", ()):  # HTTP/2 may split them per pair
            try:
                jar.load(header)
            except Exception:  # a malformed cookie header: ignored, as browsers do
                continue
        return {name: morsel.value for name, morsel in jar.items()}
