"""Helpers: mock specs from YAML text, and request views without a server."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, MultiDict

from devamb.profile.env import Interpolator
from devamb.targets.mock.matching import RequestView
from devamb.targets.mock.routes import MockSpec, Siblings, load_mock_file
from tests.targets.mock.traffic import RecordedUpstream


def mock_spec(tmp_path: Path, text: str, name: str = "mock.yaml") -> MockSpec:
    """Parse mock-file YAML (dedented) written to tmp_path/NAME; errors raise ProfileError."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    siblings = Siblings("mock", ("mock", "live"))
    return load_mock_file(path, name, Interpolator({}, {}), siblings)


def view(
    method: str = "GET",
    target: str = "/",
    headers: dict[str, str] | None = None,
    body: Any = None,
) -> RequestView:
    """A request: `target` may carry a query string; a non-bytes body is sent as JSON."""
    path, _, query = target.partition("?")
    pairs = [tuple(p.split("=", 1)) if "=" in p else (p, "") for p in query.split("&") if p]
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    return RequestView(method, path, MultiDict(pairs), CIMultiDict(headers or {}), raw or b"")


@pytest.fixture
async def recorded_upstream() -> AsyncIterator[RecordedUpstream]:
    server = await RecordedUpstream().start()
    yield server
    await server.stop()
