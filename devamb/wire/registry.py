"""The built-in followers by protocol name (the Redis follower adds its line here)."""

from __future__ import annotations

from devamb.wire.follower import register
from devamb.wire.postgres import PostgresFollower

register("postgres", PostgresFollower)
