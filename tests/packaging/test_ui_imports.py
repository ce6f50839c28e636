"""The wheel installs the repo's ui/ folder as `devamb_ui` (issue 20): a module of ui/ that
imported `ui.…` absolutely would work in the checkout and break in the installed wheel."""

from __future__ import annotations

import ast
from pathlib import Path

UI = Path(__file__).resolve().parents[2] / "ui"


def absolute_ui_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [f"{path.relative_to(UI.parent)}:{node.lineno}: {name}" for name in names
                  if name == "ui" or name.startswith("ui.")]
    return found


def test_no_module_under_ui_imports_ui_absolutely() -> None:
    modules = sorted(UI.rglob("*.py"))
    assert len(modules) > 10
    found = [line for path in modules for line in absolute_ui_imports(path)]
    assert not found, "use relative imports inside ui/ (`from .x import y`):\n" + "\n".join(found)
