"""Every profile shipped under profiles/ loads, so the README's examples stay true."""

from __future__ import annotations

from pathlib import Path

import pytest

from devamb.engine.assembly import load_profile

PROFILES = sorted((Path(__file__).parent.parent / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_shipped_profile_loads(path: Path) -> None:
    profile = load_profile(path, environ={})
    assert profile.services


def test_the_demo_profile_needs_nothing_else() -> None:
    """Its active targets are built in (echo), or the other ambassadors of the demo itself."""
    demo = load_profile(PROFILES[0].parent / "demo.yaml", environ={})
    own = {str(s.listen.port) for s in demo.services.values()}
    for service in demo.services.values():
        active = service.targets[service.target]
        assert active.kind == "echo" or any(f":{port}" in active.describe() for port in own)
