"""`demo` names the profile shipped in the package when there is no profiles/demo.yaml here."""

from __future__ import annotations

from pathlib import Path

import pytest

from devamb.profile import resolve_profile_path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_outside_the_checkout_is_a_copy_of_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = resolve_profile_path("demo", cwd=tmp_path / "elsewhere")
    assert path == tmp_path / "state" / "devamb" / "profiles" / "demo.yaml"
    assert path.read_text() == (ROOT / "profiles" / "demo.yaml").read_text()
    path.write_text("edited")  # the copy follows the shipped one
    assert resolve_profile_path("demo", cwd=tmp_path).read_text() != "edited"


def test_a_local_profiles_folder_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "demo.yaml").write_text("version: 1\n")
    assert resolve_profile_path("demo", cwd=tmp_path) == tmp_path / "profiles" / "demo.yaml"
    assert resolve_profile_path("other", cwd=tmp_path) == tmp_path / "profiles" / "other.yaml"
    assert not (tmp_path / "state").exists()
