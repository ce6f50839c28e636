"""What an HTTP/2 client may do to one connection before devamb sends it away (docs/proxy.md,
"HTTP/2 limits"). Floods are counted with token buckets: a burst, then a steady rate."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class H2Limits:
    max_streams: int = 1000  # concurrent streams per connection; more: RST_STREAM REFUSED_STREAM
    max_header_list: int = 65536  # bytes of one header list; more: GOAWAY ENHANCE_YOUR_CALM
    handshake_timeout: float = 10.0  # s for the preface and SETTINGS after connecting
    headers_timeout: float = 10.0  # s a header block may stay without END_HEADERS
    idle_timeout: float = 300.0  # s with no stream open and nothing received: GOAWAY NO_ERROR
    # (burst, per second) for frames a client sends that cost devamb work or an answer
    settings: tuple[int, float] = (1000, 100.0)
    pings: tuple[int, float] = (1000, 1000.0)
    resets: tuple[int, float] = (1000, 33.0)  # streams the client resets (CVE-2023-44487)
    refused: tuple[int, float] = (1000, 100.0)  # streams opened beyond max_streams
    unanswered: int = 1000  # SETTINGS/PING answers queued while the client does not read
    close_grace: float = 2.0  # s after a GOAWAY before a connection that does not read is cut


DEFAULT = H2Limits()


class Bucket:
    """A token bucket: `take` is False once the burst is spent faster than the rate refills it."""

    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, burst: int, rate: float, now: float) -> None:
        self.burst = burst
        self.rate = rate
        self.tokens = float(burst)
        self.at = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
