"""The built-in followers by protocol name."""

from __future__ import annotations

from devamb.wire.follower import register
from devamb.wire.postgres import PostgresFollower
from devamb.wire.resp_follow import RedisFollower

register("postgres", PostgresFollower)
register("redis", RedisFollower)
