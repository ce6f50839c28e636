"""h2's checks of received header lists, remembered (proxy/h2checks.py): a refused list is
refused every time, a passed one passes again."""

from __future__ import annotations

import h2.exceptions
import h2.utilities
import pytest

from devamb.proxy import h2checks

FLAGS = h2.utilities.HeaderValidationFlags(is_client=False, is_trailer=False,
                                           is_response_header=False, is_push_promise=False)
GOOD = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")]


def test_a_refused_list_is_refused_each_time() -> None:
    bad = [*GOOD, (b"Upper", b"x")]
    for _ in range(3):
        with pytest.raises(h2.exceptions.ProtocolError):
            list(h2checks.validate_headers(bad, FLAGS))


def test_a_passed_list_passes_again_unchanged() -> None:
    for _ in range(3):
        assert list(h2checks.validate_headers(GOOD, FLAGS)) == GOOD
    response = h2.utilities.HeaderValidationFlags(is_client=False, is_trailer=False,
                                                  is_response_header=True,
                                                  is_push_promise=False)
    with pytest.raises(h2.exceptions.ProtocolError):  # the same list, checked as a response
        list(h2checks.validate_headers(GOOD, response))
