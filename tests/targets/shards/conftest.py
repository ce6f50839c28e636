"""Real redis-servers for the sharded target's tests: three per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.targets.shards.real_redis import RedisServer, redis_servers


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    with redis_servers(tmp_path_factory.mktemp("redis"), 3) as servers:
        yield servers
