"""h2's checks of received header lists, remembered: a list that passed them once (with the
same flags: request or response, trailers or not) passes again, so a client's repeated requests
are checked once, not per stream. The checks are h2's own (h2.utilities.validate_headers, pure
functions of the list and the flags); a list they refuse is never remembered and is refused
each time, with h2's error. Installed for every h2 connection of the process (`install`).

The same for the cookie fields h2 joins in a received list (normalize_inbound_headers) and
for the three scans h2 makes of every header block it sends or receives (is it an
informational response, its :method, its content-length): h2's own functions, their answers
remembered by list (a content-length h2 refuses is not remembered: refused each time).

A list received through h2conn's HEADERS step comes with its `Fields` (h2frames): the answers
are kept there, found by the object, not by hashing the list (`received`, and h2conn).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import h2.stream
import h2.utilities

from devamb.proxy.h2frames import BytesPairs, Fields, kept

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


_normalized: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_normalize_inbound = h2.utilities.normalize_inbound_headers


def normalize_inbound_headers(headers: Iterable[Any], flags: Any) -> Iterator[Any]:
    fields = tuple(headers)
    key = (flags, *fields)
    found = _normalized.get(key)
    if found is None:
        found = tuple(_normalize_inbound(fields, flags))
        if len(fields) <= LONGEST:
            if len(_normalized) >= KEEP:
                _normalized.clear()
            _normalized[key] = found
    return iter(found)


_informational: dict[tuple[Any, ...], bool] = {}
_methods: dict[tuple[Any, ...], bytes | None] = {}
_lengths: dict[tuple[Any, ...], int | None] = {}
_is_informational = h2.utilities.is_informational_response
_extract_method = h2.utilities.extract_method_header
_initialize_content_length = h2.stream.H2Stream._initialize_content_length


def _remembered(memo: dict[tuple[Any, ...], Any], fields: tuple[Any, ...], value: Any) -> Any:
    if len(fields) <= LONGEST:
        if len(memo) >= KEEP:
            memo.clear()
        memo[fields] = value
    return value


def is_informational_response(headers: Iterable[Any]) -> bool:
    fields = tuple(headers)
    found = _informational.get(fields)
    if found is None:
        return _remembered(_informational, fields, _is_informational(fields))
    return found


def extract_method_header(headers: Iterable[Any]) -> bytes | None:
    fields = tuple(headers)
    if fields in _methods:
        return _methods[fields]
    return _remembered(_methods, fields, _extract_method(fields))


def initialize_content_length(self: h2.stream.H2Stream, headers: Iterable[Any]) -> None:
    if self.request_method == b"HEAD":  # (h2's: no scan)
        self._expected_content_length = 0
        return
    fields = tuple(headers)
    if fields in _lengths:
        self._expected_content_length = _lengths[fields]
        return
    _initialize_content_length(self, fields)  # raises as h2 would for a list it refuses
    _remembered(_lengths, fields, self._expected_content_length)


def install() -> None:
    h2.stream.validate_headers = validate_headers  # type: ignore[assignment]
    h2.stream.normalize_inbound_headers = normalize_inbound_headers  # type: ignore[assignment]
    h2.stream.is_informational_response = is_informational_response
    h2.stream.extract_method_header = extract_method_header
    h2.stream.H2Stream._initialize_content_length = (  # type: ignore[method-assign]
        initialize_content_length)


def received(stream: h2.stream.H2Stream, fields: Fields, flags: Any, encoding: Any) -> Any:
    """h2's H2Stream._process_received_headers (normalize, validate) for a received list, as
    a BytesPairs carrying the Fields of what it became: the steps' result is kept with the
    list's Fields for the flags and the stream's options last asked (a list h2 refuses is
    refused each time, by h2's own steps)."""
    config = stream.config
    normalize = config.normalize_inbound_headers
    validate = config.validate_inbound_headers
    known = fields.received
    if (known is not None and known[0] is flags and known[1] is normalize
            and known[2] is validate):
        made = BytesPairs(known[3].pairs)  # (h2frames.copied, inline)
        made._fields = known[3]
        return made
    out = stream._process_received_headers(fields.pairs, flags, encoding)
    if encoding:  # (text pairs: h2's list as it is; devamb's connections ask for bytes)
        return out
    made = kept([(name, value) for name, value in out])  # (hpack's HeaderTuples: tuples)
    assert made._fields is not None
    fields.received = (flags, normalize, validate, made._fields)
    return made
