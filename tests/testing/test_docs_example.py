"""The example of docs/testing.md runs as written: its profile and its test file, with pytest
and the plugin, in a project of their own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.testing.test_pytest_plugin import ENTRY_POINT

pytest_plugins = ["pytester"]

PAGE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[str]:
    return [text for kind, text in BLOCK.findall(PAGE.read_text()) if kind == lang]


def test_the_first_test_of_the_docs_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = next(b for b in blocks("yaml") if "services:" in b)
    example = next(b for b in blocks("python") if b.startswith("# test_"))
    name = example.splitlines()[0].removeprefix("# ").strip()
    (pytester.path / "devamb.yaml").write_text(profile)
    (pytester.path / name).write_text(example)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_subprocess("-p", ENTRY_POINT, "-p", "no:cacheprovider",
                                           timeout=240)
    result.assert_outcomes(passed=example.count("\ndef test_"))
