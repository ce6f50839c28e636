"""Passive outlier ejection: on a fake clock in isolation, and through an engine with replicas
that start failing and recover."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from devamb.cluster.endpoint import Endpoint, EndpointSet
from devamb.cluster.outlier import OutlierDetector, OutlierSpec
from devamb.engine.assembly import load_profile
from devamb.profile import ProfileError
from devamb.targets.pool import PoolTarget
from tests.conftest import EngineFactory, Notices, listen_url
from tests.replicas import Replica, eventually


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def detector(count: int, spec: OutlierSpec) -> tuple[OutlierDetector, EndpointSet, Clock, list]:
    endpoints = EndpointSet(Endpoint.from_url(f"http://10.0.0.{i}:80") for i in range(count))
    clock = Clock()
    changes: list[tuple[str, bool]] = []
    found = OutlierDetector(spec, endpoints, lambda e: changes.append((e.key, e.ejected)), clock)
    return found, endpoints, clock, changes


def test_consecutive_failures_eject_and_the_time_brings_it_back() -> None:
    d, eps, clock, changes = detector(3, OutlierSpec(3, eject_for=30.0))
    a = eps.items[0]
    d.failure(a)
    d.failure(a)
    d.success(a)  # a success breaks the run
    d.failure(a)
    d.failure(a)
    assert not a.ejected
    d.failure(a)
    assert a.ejected and a.ejections == 1 and eps.routable() == eps.items[1:]
    assert changes == [(a.key, True)]
    clock.now += 29.9
    d.expire()
    assert a.ejected
    clock.now += 0.2
    d.expire()
    assert not a.ejected and eps.routable() == eps.items
    assert changes == [(a.key, True), (a.key, False)]


def test_only_gateway_statuses_count_as_failures() -> None:
    d, eps, _, _ = detector(2, OutlierSpec(2))
    a = eps.items[0]
    for status in (500, 500, 404, 500):
        d.outcome(a, status)
    assert not a.ejected and a.consecutive_failures == 0
    d.outcome(a, 502)
    d.outcome(a, 504)
    assert a.ejected


@pytest.mark.parametrize(
    ("count", "share", "cap"), [(4, 0.5, 2), (3, 0.5, 1), (1, 0.5, 1), (4, 0.0, 0), (4, 1.0, 4)]
)
def test_max_ejected_caps_how_many_are_out(count: int, share: float, cap: int) -> None:
    d, eps, _, _ = detector(count, OutlierSpec(1, max_ejected=share))
    assert d.cap() == cap
    for endpoint in eps:
        d.failure(endpoint)
    assert sum(e.ejected for e in eps) == cap


def test_a_later_ejection_waits_for_its_own_time() -> None:
    d, eps, clock, _ = detector(4, OutlierSpec(1, eject_for=10.0))
    a, b = eps.items[:2]
    d.failure(a)
    clock.now += 5
    d.failure(b)
    clock.now += 5.5
    d.expire()
    assert not a.ejected and b.ejected
    clock.now += 5
    d.expire()
    assert not b.ejected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("50%", 0.5), ("12.5%", 0.125), ("100", 1.0), ("0%", 0.0)],
)
def test_max_ejected_reads_percentages(tmp_path: Path, text: str, expected: float) -> None:
    spec = load_pool(tmp_path, f"outlier: {{max_ejected: {text}}}").outlier
    assert spec is not None and spec.max_ejected == pytest.approx(expected)


def test_outlier_defaults_and_errors(tmp_path: Path) -> None:
    spec = load_pool(tmp_path, "outlier: {}").outlier
    assert spec == OutlierSpec(5, 30.0, 0.5)
    path = tmp_path / "devamb.yaml"
    path.write_text(pool_yaml("outlier: {consecutive_failures: 0, eject_for: soon}"))
    with pytest.raises(ProfileError) as info:
        load_profile(path, environ={})
    messages = [p.message for p in info.value.problems]
    assert messages == ["0 is out of range 1..1000",
                        "'soon' is not a duration (use e.g. 250ms, 2s, 1m)"]


def pool_yaml(extra: str) -> str:
    return f"""\
version: 1
services:
  api:
    listen: 0
    targets:
      replicas:
        endpoints: [http://127.0.0.1:1]
        {extra}
"""


def load_pool(tmp_path: Path, extra: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "devamb.yaml"
    path.write_text(pool_yaml(extra))
    return load_profile(path, environ={}).services["api"].targets["replicas"]


# -- through an engine -------------------------------------------------------------------------


async def test_a_failing_replica_is_ejected_and_returns(
    make_engine: EngineFactory, replicas: list[Replica]
) -> None:
    listed = ", ".join(r.url for r in replicas)
    engine = await make_engine(f"""\
        version: 1
        services:
          api:
            listen: 0
            targets:
              replicas:
                endpoints: [{listed}]
                outlier: {{consecutive_failures: 3, eject_for: 300ms, max_ejected: 34%}}
        """)
    target = engine.services["api"].targets["replicas"]
    assert isinstance(target, PoolTarget)
    notices = Notices(engine)
    replicas[1].status = 503
    replicas[2].status = 502
    url = listen_url(engine, "api") + "/"

    async def round_of(n: int) -> Counter[tuple[str, int]]:
        got: Counter[tuple[str, int]] = Counter()
        async with aiohttp.ClientSession() as session:
            for _ in range(n):
                async with session.get(url) as response:
                    got[(await response.text(), response.status)] += 1
        return got

    first = await round_of(9)  # r1 reaches 3 failures first (8th request) and is ejected
    assert first == {("r0", 200): 4, ("r1", 503): 3, ("r2", 502): 2}
    r1 = target.endpoints.items[1]
    r2 = target.endpoints.items[2]
    assert r1.ejected and not r2.ejected  # 34 % of 3: only one may be out
    await eventually(lambda: bool(notices.seen), what="the ejection notice")
    assert notices.seen == [(
        "warning",
        f"api/replicas: ejected {replicas[1].url} for 0.3s after 3 failures in a row; "
        "2 of 3 endpoints routable",
    )]
    status = (await engine.status())["services"][0]["targets"][0]
    assert [e["state"] for e in status["details"]["endpoints"]] == ["unknown", "ejected", "unknown"]
    assert status["state"] == "degraded"

    replicas[1].status = 200
    replicas[2].status = 200
    assert await round_of(6) == {("r0", 200): 3, ("r2", 200): 3}
    await eventually(lambda: not r1.ejected, what="r1 returns after 300 ms")
    back = ("info", f"api/replicas: {replicas[1].url} is back after its ejection")
    await eventually(lambda: notices.last() == back, what="the notice")
    assert await round_of(6) == {("r0", 200): 2, ("r1", 200): 2, ("r2", 200): 2}
