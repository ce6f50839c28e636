"""The small JSON answers the ambassador gives when it cannot get one from upstream."""

from __future__ import annotations

import json
from collections.abc import Callable

from devamb.proxy.response import Response

ERROR_HEADER = "x-devamb-error"


class UpstreamFailed(Exception):
    """Raised by a target before any response byte reached the client."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code  # short, stable: connect-failed, timeout, upstream-closed, ...
        self.reason = reason


def error_response(
    status: int,
    code: str,
    reason: str,
    service: str,
    target: str,
    mask: Callable[[str], str] | None = None,
) -> Response:
    """`mask` (the service's redaction) hides secrets a reason may quote: a host name or URL
    built from `${VAR}` values, lowercased or encoded on the way."""
    if mask is not None:
        reason, target = mask(reason), mask(target)
    body = {"error": code, "reason": reason, "service": service, "target": target}
    response = Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={ERROR_HEADER: code},
    )
    if status == 408:  # the client stalled mid-body: close, as nginx does, rather than linger
        response.keep_alive = False
    return response

class CutConnection(Exception):
    """Raised inside a body stream: stop here and cut the client's connection."""

    def __init__(self, reason: str, *, reset: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reset = reset  # True: a TCP reset (RST); False: a plain close (FIN)


class RetryableStatus(Exception):
    """The upstream answered a status the retry policy retries; nothing reached the client."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status
