"""An HTTP/2 call's request head, read the way keys read an HTTP/1.1 request (`FrontRequest`):
headers (no pseudo-headers), path, query and cookies, so that a hash, a sticky split or a shard
key picks per call as it picks per exchange."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from devamb.proxy.h2conn import H2Headers
from devamb.proxy.request import RequestHead


class H2Request(RequestHead):
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
