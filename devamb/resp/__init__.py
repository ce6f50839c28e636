"""RESP2, the Redis protocol: framing, the command table, and a sharding proxy built on them."""
