"""A gRPC call's :path, `/pkg.Service/Method`."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=256)  # (a client calls the same few methods again and again)
def split_path(path: str | None) -> tuple[str, str] | None:
    """(service, method) of `/pkg.Service/Method`; None for anything else."""
    if not path or not path.startswith("/"):
        return None
    parts = path[1:].split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def is_grpc(content_type: str | None) -> bool:
    """`application/grpc`, with or without a suffix (`+proto`, `+json`) or parameters."""
    if not content_type:
        return False
    if content_type == "application/grpc":  # (what grpcio sends: no parsing)
        return True
    base = content_type.split(";", 1)[0].strip().lower()
    return base == "application/grpc" or base.startswith("application/grpc+")
