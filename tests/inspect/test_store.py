"""The exchange store: per-service rings and one byte budget, oldest out first."""

from __future__ import annotations

import aiohttp

from devamb.inspect.exchange import BodyPreview, Exchange
from devamb.inspect.store import ExchangeStore
from tests.conftest import EngineFactory, listen_url
from tests.upstreams import HttpUpstream


def _exchange(i: int, service: str = "a", size: int = 0) -> Exchange:
    ex = Exchange(i, service, "t", "http", "127.0.0.1", response_body=BodyPreview(size))
    ex.response_body.add(b"x" * size)
    return ex


def test_keep_per_service_and_order() -> None:
    store = ExchangeStore()
    store.configure("a", keep=3)
    for i in range(1, 8):
        store.add(_exchange(i, "a" if i % 2 else "b"))
    assert [e.id for e in store.all()] == [2, 3, 4, 5, 6, 7]  # "a" kept 3, 5, 7
    assert [e.id for e in store.recent(2)] == [6, 7]
    assert store.get(4).id == 4 and store.get(1) is None  # type: ignore[union-attr]


def test_budget_evicts_oldest_across_services() -> None:
    store = ExchangeStore(budget=100_000)
    for i in range(1, 41):
        store.add(_exchange(i, "ab"[i % 2], size=10_000))
    assert store.bytes <= 100_000
    ids = [e.id for e in store.all()]
    assert ids == list(range(ids[0], 41)) and len(ids) < 10


async def test_flood_of_large_bodies_stays_within_budget(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(f"""
    inspect: {{budget: 2MiB}}
    services:
      api:
        listen: 0
        targets: {{up: {upstream.url}}}
        inspect: {{bodies: 64KiB}}
    """)
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client:
        for _ in range(100):
            await (await client.get(f"{url}/bytes/{256 * 1024}")).read()
    assert engine.store.bytes <= 2 * 1024 * 1024
    kept = engine.store.all()
    assert 20 <= len(kept) < 100 and kept[-1].response_body.size == 256 * 1024
    assert all(len(e.response_body.data) == 64 * 1024 for e in kept)  # previews are capped


def test_out_of_order_completions_are_found_and_listed_by_id() -> None:
    """Exchanges arrive when they complete: a long-lived one started first arrives last."""
    store = ExchangeStore()
    for i in (2, 3, 5, 1, 4):
        store.add(_exchange(i, "a"))
    assert [store.get(i).id for i in range(1, 6)] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
    assert [e.id for e in store.all()] == [1, 2, 3, 4, 5]
    assert [e.id for e in store.recent(2)] == [4, 5]
    assert len(store) == 5 and store.get(6) is None


def test_keep_drops_the_earliest_completed_and_forgets_its_id() -> None:
    store = ExchangeStore()
    store.configure("a", keep=2)
    for i in (3, 1, 2):  # 3 completed first, so it is the one to go
        store.add(_exchange(i, "a"))
    assert [e.id for e in store.all()] == [1, 2] and store.get(3) is None


def test_budget_drops_the_earliest_completed_across_services() -> None:
    store = ExchangeStore(budget=25_000)
    store.add(_exchange(5, "a", size=10_000))
    store.add(_exchange(1, "b", size=10_000))  # started first, completed second
    store.add(_exchange(6, "a", size=10_000))
    assert [e.id for e in store.all()] == [1, 6] and store.bytes <= 25_000
