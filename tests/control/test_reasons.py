"""The reason phrases devamb writes (devamb/control/reasons.py) are Python 3.11's
`http.HTTPStatus` ones; the engine does not import that enum (issue 22: RSS after start)."""

from __future__ import annotations

import sys
from http import HTTPStatus

import pytest

from devamb.control.http_server import Reply
from devamb.control.reasons import REASONS, reason
from devamb.proxy.response import status_line


def test_every_status_python_knows_has_its_phrase() -> None:
    assert set(REASONS) == {status.value for status in HTTPStatus}


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.13 renamed 413, 416 and 422")
def test_the_phrases_are_python_3_11s() -> None:
    assert {status.value: status.phrase for status in HTTPStatus} == REASONS


def test_status_lines_carry_the_phrase() -> None:
    assert status_line(418) == "HTTP/1.1 418 I'm a Teapot\r\n"
    assert status_line(599) == "HTTP/1.1 599 Unknown\r\n"
    assert Reply.json({}, status=404).head(True).startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert reason(503) == "Service Unavailable"
