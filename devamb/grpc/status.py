"""gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html)."""

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
NAMES: dict[int, str] = {number: name for name, number in CODES.items()}


def name_of(number: int) -> str:
    """The code's name; an unknown number reads `CODE_<n>`."""
    return NAMES.get(number, f"CODE_{number}")


def parse_code(text: str | int) -> int | None:
    """A code from its name (any case) or number; None when it is neither."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text if text >= 0 else None
    if not isinstance(text, str):
        return None
    word = text.strip()
    if word.isdigit():
        return int(word)
    return CODES.get(word.upper())
