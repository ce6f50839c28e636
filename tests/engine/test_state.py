"""Runtime choices survive a restart unless the service changed or --reset is used."""

from __future__ import annotations

import textwrap
from pathlib import Path

from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.engine.state import RuntimeState

PROFILE = """
services:
  api:
    listen: 0
    target: a
    targets: {a: echo, b: echo}
  other:
    listen: 0
    target: x
    targets: {x: echo, y: echo}
"""


async def _engine(tmp_path: Path, text: str) -> Engine:
    (tmp_path / "devamb.yaml").write_text(textwrap.dedent(text))
    engine = Engine(
        load_profile(tmp_path / "devamb.yaml"), state=RuntimeState(tmp_path / "state.json")
    )
    await engine.start()
    return engine


async def test_switch_survives_restart(tmp_path: Path) -> None:
    engine = await _engine(tmp_path, PROFILE)
    await engine.switch("api", "b")
    await engine.switch("other", "y")
    await engine.stop()
    edited = PROFILE.replace("targets: {x: echo, y: echo}", "targets: {x: echo, y: echo, z: echo}")
    engine = await _engine(tmp_path, edited)
    try:
        assert engine.services["api"].active == "b"  # unchanged service: kept
        assert engine.services["other"].active == "x"  # edited service: the profile's choice
    finally:
        await engine.stop()


def test_damaged_state_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    assert RuntimeState(tmp_path / "state.json").path == tmp_path / "state.json"
