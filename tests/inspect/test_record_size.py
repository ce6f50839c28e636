"""What the store counts for a record is what the record holds (issue 22: the store holds its
byte budget in memory, not only in preview bytes)."""

from __future__ import annotations

import copy
import gc
import sys

import aiohttp
import pytest

from devamb.inspect.exchange import Exchange
from tests.conftest import EngineFactory, listen_url
from tests.upstreams import HttpUpstream


def held_bytes(exchange: Exchange) -> int:
    """sys.getsizeof of every object the record alone holds (what the service and target names
    point to is shared by every record of the service, and counted by none)."""
    shared = {id(exchange.service), id(exchange.target), id(exchange.protocol)}
    seen: set[int] = set()
    todo: list[object] = [exchange]
    total = 0
    while todo:
        obj = todo.pop()
        if id(obj) in seen or id(obj) in shared or isinstance(obj, type) or obj is None:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        todo.extend(gc.get_referents(obj))
    return total


async def test_a_recorded_http_exchange_is_counted_as_it_is_held(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    engine = await make_engine(f"""
    services:
      api:
        listen: 0
        targets: {{up: {upstream.url}}}
    """)
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client:
        for path in ("/bytes/1024", "/bytes/100", "/json?x=1", "/status/404"):
            await (await client.get(f"{url}{path}")).read()
    kept = engine.store.all()
    assert len(kept) == 4
    for exchange in kept:
        assert exchange.request_headers and exchange.response_headers
        held, counted = held_bytes(exchange), exchange.approx_size()
        # allocators round each object up: the count may be above what getsizeof sees
        assert held <= counted <= 1.5 * held, (exchange.path, held, counted)


def test_the_store_counts_what_it_took_in() -> None:
    from devamb.inspect.exchange import BodyPreview
    from devamb.inspect.store import ExchangeStore

    store = ExchangeStore(budget=50_000)
    sizes = []
    for i in range(1, 11):
        exchange = Exchange(i, "a", "t", "http", "127.0.0.1", response_body=BodyPreview(20_000))
        exchange.response_body.add(b"x" * 20_000)
        sizes.append(exchange.approx_size())
        store.add(exchange)
    assert store.added == sum(sizes) and store.bytes <= 50_000 < store.added


async def test_records_of_one_client_share_what_they_hold_alike(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    """The same request again on a kept-alive connection: its records share the method, the
    path and the upstream URL (one str each, not one a record), and an empty `notes`; each
    still reads what it read before."""
    engine = await make_engine(f"""
    services:
      api:
        listen: 0
        targets: {{up: {upstream.url}}}
    """)
    url = listen_url(engine, "api")
    async with aiohttp.ClientSession() as client:
        for path in ("/bytes/64", "/bytes/64", "/bytes/64?x=1", "/bytes/64"):
            await (await client.get(f"{url}{path}")).read()
        await (await client.post(f"{url}/bytes/64", data=b"hi")).read()
    first, second, other, fourth, posted = engine.store.all()
    assert (first.method, first.path, first.url) == ("GET", "/bytes/64", f"{upstream.url}/bytes/64")
    assert second.method is first.method and second.path is first.path
    assert second.url is first.url and fourth.url is first.url
    assert (other.path, other.url) == ("/bytes/64?x=1", f"{upstream.url}/bytes/64?x=1")
    assert posted.method == "POST" and posted.path == "/bytes/64" and posted.url == first.url
    assert first.notes == {} and first.notes is second.notes  # (nothing noted: shared)
    assert "notes" not in first.to_json() and first.detail()["url"] == first.url


def test_a_record_writes_notes_of_its_own() -> None:
    from devamb.inspect.exchange import NO_NOTES

    one, two = (Exchange(i, "a", "t", "http", "127.0.0.1") for i in (1, 2))
    assert one.notes is NO_NOTES and two.notes is NO_NOTES and not one.notes
    with pytest.raises(TypeError):
        one.notes["mock"] = {}  # the shared empty one: written only through own_notes()
    with pytest.raises(TypeError):
        one.notes.setdefault("drain", "now")
    one.own_notes()["mock"] = {"matched": None}
    one.own_notes().setdefault("http2", {})["trailers"] = []
    assert one.notes == {"mock": {"matched": None}, "http2": {"trailers": []}}
    assert two.notes == {} and two.notes is NO_NOTES and NO_NOTES == {}
    assert one.to_json()["notes"] == {"mock": {"matched": None}, "http2": {"trailers": []}}
    given = Exchange(3, "a", "t", "http", "127.0.0.1", notes={"x": 1})
    assert given.own_notes() is given.notes == {"x": 1}
    copied = copy.deepcopy(two)  # (a copy of the shared one is written through own_notes too)
    copied.own_notes()["drain"] = "now"
    assert copied.notes == {"drain": "now"} and two.notes is NO_NOTES and NO_NOTES == {}
