"""MkDocs hooks: the repository's screenshots/ served with the docs site, and the generated
reference pages filled in.

The pages link screenshots as `../screenshots/x.svg`, which works on GitHub; the site serves
the same files as `screenshots/x.svg` and the links are rewritten to match, so strict mode
finds them and nothing is copied into docs/. A `<!-- reference: NAME -->` line is replaced by
the reference made from the code (scripts/reference_pages.py), so nothing generated is committed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from mkdocs.structure.files import File, Files

SCRIPTS = Path(__file__).resolve().parent
SCREENSHOTS = SCRIPTS.parent / "screenshots"


def _reference_pages() -> ModuleType:
    """scripts/reference_pages.py (mkdocs loads hooks by path: scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location("reference_pages", SCRIPTS / "reference_pages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFERENCE = _reference_pages()


def on_files(files: Files, config: Any) -> Files:
    for shot in sorted(SCREENSHOTS.iterdir()):
        if shot.is_file():
            files.append(File.generated(config, f"screenshots/{shot.name}", abs_src_path=str(shot)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    up = "../" * page.file.src_uri.count("/")  # from the page to the docs root
    markdown = REFERENCE.expand(markdown)
    return markdown.replace("](../screenshots/", f"]({up}screenshots/")
