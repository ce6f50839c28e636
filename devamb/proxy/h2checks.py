"""h2's checks of received header lists, remembered: a list that passed them once (with the
same flags: request or response, trailers or not) passes again, so a client's repeated requests
are checked once, not per stream. The checks are h2's own (h2.utilities.validate_headers, pure
functions of the list and the flags); a list they refuse is never remembered and is refused
each time, with h2's error. Installed for every h2 connection of the process (`install`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import h2.stream
import h2.utilities

KEEP = 256  # lists remembered (all forgotten when full)
LONGEST = 32  # fields in a list worth remembering

_checked: dict[tuple[Any, ...], bool] = {}
_validate = h2.utilities.validate_headers


def validate_headers(headers: Iterable[Any], flags: Any) -> Iterator[Any]:
    fields = tuple(headers)
    if len(fields) > LONGEST:
        return iter(_validate(fields, flags))
    key = (flags, *fields)
    if key in _checked:
        return iter(fields)
    checked = list(_validate(fields, flags))  # raises as h2 would for a list it refuses
    if len(_checked) >= KEEP:
        _checked.clear()
    _checked[key] = True
    return iter(checked)


def install() -> None:
    h2.stream.validate_headers = validate_headers  # type: ignore[assignment]
