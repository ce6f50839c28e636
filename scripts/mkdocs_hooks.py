"""MkDocs hooks: the repository's screenshots/ served with the docs site.

The pages link screenshots as `../screenshots/x.svg`, which works on GitHub; the site serves
the same files as `screenshots/x.svg` and the links are rewritten to match, so strict mode
finds them and nothing is copied into docs/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"


def on_files(files: Files, config: Any) -> Files:
    for shot in sorted(SCREENSHOTS.iterdir()):
        if shot.is_file():
            files.append(File.generated(config, f"screenshots/{shot.name}", abs_src_path=str(shot)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    up = "../" * page.file.src_uri.count("/")  # from the page to the docs root
    return markdown.replace("](../screenshots/", f"]({up}screenshots/")
