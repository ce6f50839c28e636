"""Every profile the README and docs show (whole profiles and service snippets, as
tests/test_docs.py loads them) exports to a bootstrap the real Envoy accepts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from devamb.export.bootstrap import export_envoy
from devamb.export.load import load_for_export
from devamb.export.validate import validate_envoy
from tests.test_docs import (
    VAR,
    Block,
    create_body_files,
    create_named_files,
    kind_of,
    wrap,
    yaml_blocks,
)
from tests.test_docs import _structure as structure

BLOCKS = [b for b in yaml_blocks()
          if kind_of(b)[0] != "yaml" and "invalid" not in kind_of(b)[1]]


def test_there_are_docs_profiles() -> None:
    assert len(BLOCKS) >= 15


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_docs_profile_exports_to_a_valid_bootstrap(block: Block, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    kind, flags = kind_of(block)
    text = wrap(kind, block.text, "tcp" in flags)
    profile = tmp_path / "devamb.yaml"
    profile.write_text(text, encoding="utf-8")
    if kind == "mock-file":
        mock_file = tmp_path / "mocks" / "example.yaml"
        mock_file.parent.mkdir()
        mock_file.write_text(textwrap.dedent(block.text), encoding="utf-8")
        create_body_files(mock_file, structure(textwrap.dedent(block.text)))
    create_named_files(tmp_path, structure(text))
    environ = {name: f"docs-value-of-{name.lower()}" for name in VAR.findall(block.text)}
    export = export_envoy(load_for_export(profile, environ=environ))
    ok, message = validate_envoy(export.text, export.env_vars)
    assert ok, f"{block.where}:\n{message}"
