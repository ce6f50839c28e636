"""Split targets: profile forms, weighted ratios within binomial bounds, stickiness, members
that cannot take traffic, TCP splits, and mirroring recorded as exchanges of their own."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.targets.base import TargetContext, TargetUnavailable
from devamb.targets.split import SplitTarget, SplitTargetSpec
from tests.conftest import EngineFactory, Notices, free_port, listen_url, problems
from tests.replicas import Replica, eventually
from tests.upstreams import TcpUpstream


@pytest.fixture
async def sites() -> AsyncIterator[dict[str, Replica]]:
    made = {name: await Replica(name).start() for name in ("local", "staging", "shadow")}
    yield made
    for replica in made.values():
        await replica.stop()


def profile(sites: dict[str, Replica], split: str, protocol: str = "http") -> str:
    return f"""\
version: 1
services:
  api:
    listen: 0
    protocol: {protocol}
    timeout: 2s
    target: canary
    targets:
      local: {sites["local"].url}
      staging: {sites["staging"].url}
      shadow: {sites["shadow"].url}
      canary: {split}
"""


def split_of(engine: Engine, name: str = "canary") -> SplitTarget:
    target = engine.services["api"].targets[name]
    assert isinstance(target, SplitTarget)
    return target


async def send(
    url: str, count: int, headers: list[dict[str, str]] | None = None, concurrency: int = 32
) -> list[str]:
    """`count` GETs, `concurrency` at a time; the answers in order."""
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> str:
            async with gate, session.get(url, headers=headers[i] if headers else None) as r:
                return await r.text()

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def within_binomial(observed: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


# -- profile ---------------------------------------------------------------------------------


def test_a_full_split_entry_parses(tmp_path: Path) -> None:
    sites = {n: Replica(n) for n in ("local", "staging", "shadow")}
    path = tmp_path / "devamb.yaml"
    path.write_text(profile(sites, "{split: {local: 90, staging: 10}, sticky: header:X-User-Id, "
                                   "mirror: shadow, mirror_max_body: 1KiB}"))
    spec = load_profile(path, environ={}).services["api"].targets["canary"]
    assert isinstance(spec, SplitTargetSpec) and spec.kind == "split"
    assert spec.weights == (("local", 90), ("staging", 10))
    assert str(spec.sticky) == "header:X-User-Id" and spec.mirror == "shadow"
    assert spec.mirror_max_body == 1024
    assert spec.describe() == (
        "local 90%, staging 10%, sticky on header:X-User-Id, mirrored to shadow"
    )


@pytest.mark.parametrize(
    ("split", "protocol", "expected"),
    [
        ("{split: {local: 90, stagin: 10}}", "http",
         "devamb.yaml:12:35: services.api.targets.canary.split.stagin: member 'stagin' is not "
         "another target of this service; known: local, staging, shadow"),
        ("{split: {local: 0, staging: 0}}", "http",
         "devamb.yaml:12:23: services.api.targets.canary.split: at least one member needs a "
         "weight above 0"),
        ("{split: {local: 1}, mirror: canary}", "http",
         "devamb.yaml:12:43: services.api.targets.canary.mirror: mirror target 'canary' is not "
         "another target of this service; known: local, staging, shadow"),
        ("{split: {local: 1}, sticky: header:X}", "tcp",
         "devamb.yaml:12:43: services.api.targets.canary.sticky: sticky splitting needs HTTP "
         "requests"),
        ("{split: {local: -1}}", "http",
         "devamb.yaml:12:31: services.api.targets.canary.split.local: -1 is out of range "
         "0..1000000"),
    ],
)
def test_bad_splits_are_reported_precisely(
    tmp_path: Path, split: str, protocol: str, expected: str
) -> None:
    sites = {n: Replica(n) for n in ("local", "staging", "shadow")}
    text = profile(sites, split, protocol)
    if protocol == "tcp":
        text = text.replace("http://", "tcp://")
    assert problems(tmp_path, text) == [expected]


def test_splits_do_not_nest(tmp_path: Path) -> None:
    sites = {n: Replica(n) for n in ("local", "staging", "shadow")}
    text = profile(sites, "{split: {local: 1, other: 1}}")
    text += "      other: {split: {local: 1}}\n"
    assert problems(tmp_path, text) == [
        "devamb.yaml:12:34: services.api.targets.canary.split.other: member 'other' is a split "
        "target itself; splits do not nest"
    ]


# -- weights and stickiness --------------------------------------------------------------------


async def test_ratios_stay_within_binomial_bounds_over_2000_requests(
    make_engine: EngineFactory, sites: dict[str, Replica]
) -> None:
    engine = await make_engine(profile(sites, "{split: {local: 90, staging: 10}}"))
    split_of(engine).rng = random.Random(2026)
    answers = Counter(await send(listen_url(engine, "api") + "/", 2000))
    assert set(answers) == {"local", "staging"}
    assert within_binomial(answers["staging"], 2000, 0.10), answers
    members = split_of(engine).details()["members"]
    assert [m["requests"] for m in members] == [answers["local"], answers["staging"]]
    assert [m["configured_share"] for m in members] == [0.9, 0.1]
    assert all(e.target == "canary" for e in engine.store.all())
    assert {e.url for e in engine.store.all()} == {
        sites["local"].url + "/", sites["staging"].url + "/"
    }


async def test_the_same_key_always_lands_on_the_same_member(
    make_engine: EngineFactory, sites: dict[str, Replica]
) -> None:
    engine = await make_engine(
        profile(sites, "{split: {local: 50, staging: 50}, sticky: header:X-User-Id}")
    )
    users = [f"user-{i}" for i in range(200)]
    headers = [{"X-User-Id": u} for u in users * 5]
    answers = await send(listen_url(engine, "api") + "/", len(headers), headers)
    by_user: dict[str, set[str]] = {}
    for header, answer in zip(headers, answers, strict=True):
        by_user.setdefault(header["X-User-Id"], set()).add(answer)
    assert all(len(members) == 1 for members in by_user.values())
    on_staging = sum(1 for m in by_user.values() if m == {"staging"})
    assert within_binomial(on_staging, 200, 0.5)
    # without the key, requests are spread at random
    loose = Counter(await send(listen_url(engine, "api") + "/", 200))
    assert set(loose) == {"local", "staging"}


async def test_sticky_keys_move_only_at_the_weight_boundary(
    make_engine: EngineFactory, sites: dict[str, Replica]
) -> None:
    """Changing 90/10 to 80/20 moves only keys from local to staging, never back."""
    engine = await make_engine(
        profile(sites, "{split: {local: 90, staging: 10}, sticky: header:X-User-Id}")
    )
    before = split_of(engine)
    keys = [f"u{i}" for i in range(2000)]
    first = {k: before.choose(_request(k)).name for k in keys}
    spec = SplitTargetSpec("canary", (("local", 80), ("staging", 20)), before.spec.sticky)
    after = SplitTarget(spec, before.context)  # the same service, the same siblings
    second = {k: after.choose(_request(k)).name for k in keys}
    moved = [k for k in keys if first[k] != second[k]]
    assert all(first[k] == "local" and second[k] == "staging" for k in moved)
    assert within_binomial(len(moved), 2000, 0.10)


def _request(user: str) -> Any:
    """All a header key reads of a request (aiohttp's mocked requests are slow to make)."""
    return SimpleNamespace(headers={"X-User-Id": user})


async def test_a_member_that_cannot_take_traffic_is_passed_over(
    make_engine: EngineFactory, sites: dict[str, Replica]
) -> None:
    text = profile(sites, "{split: {local: 50, replicas: 50}}")
    dead = "{endpoints: [http://127.0.0.1:9], outlier: {consecutive_failures: 1}}"
    text += f"      replicas: {dead}\n"
    engine = await make_engine(text)
    split_of(engine).rng = random.Random(1)
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(40):
            async with session.get(listen_url(engine, "api") + "/") as response:
                statuses.append(response.status)
    assert statuses.count(502) == 1  # the first exchange on the dead pool ejects its endpoint
    assert statuses.count(200) == 39
    assert split_of(engine).state == "degraded"


async def test_a_splits_state_follows_its_members_reachability(
    make_engine: EngineFactory, sites: dict[str, Replica]
) -> None:
    text = profile(sites, "{split: {local: 50, gone: 50}}")
    text += f"      gone: http://127.0.0.1:{free_port()}\n"
    engine = await make_engine(text)
    split = split_of(engine)
    assert split.state == "unknown"  # no member was tried yet
    await engine.status()  # probes the members (waiting for first answers)
    await eventually(lambda: split.details()["members"][1]["state"] == "refused", what="probe")
    assert split.details()["members"][0]["state"] == "reachable"
    assert split.state == "degraded"
    await sites["local"].stop()
    for _ in range(20):  # real exchanges on new connections find local gone too
        async with aiohttp.ClientSession() as session, session.get(
            listen_url(engine, "api") + "/"
        ) as response:
            assert response.status == 502
        if split.state == "unavailable":
            break
    assert split.state == "unavailable"


async def test_a_split_without_its_members_answers_503_saying_so() -> None:
    spec = SplitTargetSpec("canary", (("local", 1),))
    target = SplitTarget(spec, TargetContext("api", "http", 2.0))  # built alone: no siblings
    assert target.state == "unavailable"
    assert target.details()["reason"] == "'local' not among its service's targets"
    with pytest.raises(TargetUnavailable, match="'local' not among its service's targets"):
        target.choose(None)


async def test_tcp_splits_pick_a_member_per_connection(make_engine: EngineFactory) -> None:
    async def naming(name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name.encode())
        await writer.drain()
        writer.close()

    ups = {n: await TcpUpstream(lambda r, w, n=n: naming(n, r, w)).start() for n in ("a", "b")}
    try:
        engine = await make_engine(f"""\
version: 1
services:
  cache:
    listen: 0
    protocol: tcp
    target: canary
    targets:
      a: tcp://127.0.0.1:{ups["a"].port}
      b: tcp://127.0.0.1:{ups["b"].port}
      canary: {{split: {{a: 75, b: 25}}}}
""")
        engine.services["cache"].targets["canary"].rng = random.Random(5)  # type: ignore[attr-defined]
        port = engine.services["cache"].bound[1]  # type: ignore[index]
        got: Counter[bytes] = Counter()
        for _ in range(400):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            got[await reader.read()] += 1
            writer.close()
        assert set(got) == {b"a", b"b"} and within_binomial(got[b"b"], 400, 0.25)
    finally:
        for up in ups.values():
            await up.stop()


# -- mirroring -------------------------------------------------------------------------------


async def test_a_mirrored_copy_is_recorded_as_its_own_exchange(
    make_engine: EngineFactory, sites: dict[str, Replica]
) -> None:
    engine = await make_engine(profile(sites, "{split: {local: 1}, mirror: shadow}"))
    assert split_of(engine).replay_token == engine.recorder.replay_token  # given at construction
    async with aiohttp.ClientSession() as session:
        url = listen_url(engine, "api") + "/orders?id=7"
        async with session.get(url, headers={"X-User-Id": "u1"}) as response:
            assert await response.text() == "local"
    await eventually(lambda: len(engine.store.all()) == 2, what="the copy is recorded")
    original, copy = sorted(engine.store.all(), key=lambda e: e.target)
    assert (original.target, copy.target) == ("canary", "shadow")
    assert copy.replay_of == original.id
    assert copy.path == "/orders?id=7" and copy.status == 200
    assert ("X-Devamb-Mirror-Of", str(original.id)) in (copy.request_headers or [])
    seen = sites["shadow"].seen[-1]
    assert seen.headers["X-User-Id"] == "u1" and seen.path_qs == "/orders?id=7"
    assert split_of(engine).details()["mirror"]["sent"] == 1


async def test_bodies_are_mirrored_up_to_the_cap_and_skips_say_why(
    make_engine: EngineFactory, sites: dict[str, Replica]
) -> None:
    engine = await make_engine(
        profile(sites, "{split: {local: 1}, mirror: shadow, mirror_max_body: 1KiB}")
    )
    target = split_of(engine)
    notices = Notices(engine)
    async with aiohttp.ClientSession() as session:
        url = listen_url(engine, "api") + "/charge"
        async with session.post(url, data=b"x" * 600) as response:
            assert response.status == 200
        await eventually(lambda: target.mirror.sent == 1, what="the small body is mirrored")
        assert sites["shadow"].seen[-1].method == "POST"
        async with session.post(url, data=b"y" * 5000) as response:
            assert await response.text() == "local"
    stats = target.details()["mirror"]
    assert stats["sent"] == 1 and stats["skipped"] == 1
    assert stats["last_skip"] == "request body of 5000 bytes is above mirror_max_body (1024 bytes)"
    await eventually(lambda: bool(notices.seen), what="the notice")
    assert len(notices.seen) == 1 and "was not mirrored" in notices.seen[0][1]
    assert sites["shadow"].requests == 1 and sites["local"].requests == 2
