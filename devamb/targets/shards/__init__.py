"""Sharded targets, and RESP2 (the Redis protocol): framing, the command table, and the sharding
proxy built on them."""
