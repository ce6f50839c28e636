"""gRPC status codes by name (grpc/doc/statuscodes.md): what profiles, filters and records use."""

from __future__ import annotations

CODES: dict[str, int] = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}
_NAMES = {number: name for name, number in CODES.items()}


def name_of(number: int) -> str:
    """The name of a status number; an unknown number is shown as itself."""
    return _NAMES.get(number, str(number))
