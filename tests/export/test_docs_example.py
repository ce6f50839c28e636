"""The report shown in docs/export.md is the one devamb prints for that profile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devamb.export.bootstrap import export_envoy
from devamb.export.load import load_for_export

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_report_example_is_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the report names profiles/… as a user in the project does
    page = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    example = re.search(r"For\s+\[?`(profiles/[\w-]+\.yaml)`.*?```text\n(.*?)```", page, re.S)
    assert example is not None
    export = export_envoy(load_for_export(Path(example[1]), environ={}))
    assert export.report.text() == example[2]
