"""The docs build as a site (mkdocs.yml) in strict mode, with a CLI reference generated from it.

Strict mode (with mkdocs.yml's `validation:`) fails on a link to a missing page, file or anchor
and on a page missing from the nav. Skips when mkdocs is not installed (the `docs` extra), but
fails under CI=1.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    """This tree's devamb first, for `python -m devamb` and for mkdocs-click's import."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "NO_MKDOCS_2_WARNING": "1"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    modules = ("mkdocs", "material", "mkdocs_click", "mkdocstrings_handlers.python")
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (pip install -e '.[docs]')"
        if os.environ.get("CI"):
            pytest.fail(f"the docs site must build in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_mermaid_blocks_become_diagrams(site: Path) -> None:
    """mkdocs.yml's superfences custom fence: a ```mermaid block is drawn, not shown as code."""
    pages = [p for p in (ROOT / "docs").rglob("*.md") if "```mermaid" in p.read_text("utf-8")]
    assert pages
    for page in pages:
        built = site / page.relative_to(ROOT / "docs").with_suffix("") / "index.html"
        assert '<pre class="mermaid"><code>' in built.read_text(encoding="utf-8"), page.name


def top_level_commands() -> set[str]:
    """The commands `devamb --help` lists."""
    proc = subprocess.run(
        [sys.executable, "-m", "devamb", "--help"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60, check=True,
    )
    section = proc.stdout.split("Commands:", 1)[1]
    return set(re.findall(r"^  ([a-z][a-z0-9-]*)\s", section, re.M))


def test_generated_cli_reference_lists_every_command(site: Path) -> None:
    page = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    documented = set(re.findall(r'<h3 id="devamb-([a-z0-9-]+)"', page))
    commands = top_level_commands()
    assert len(commands) > 10, commands  # the --help parse found the list
    assert documented == commands


def test_screenshots_are_served_with_the_pages(site: Path) -> None:
    shots = sorted(p.name for p in (ROOT / "screenshots").iterdir() if p.is_file())
    assert shots and all((site / "screenshots" / name).is_file() for name in shots)
    tui = (site / "tui" / "index.html").read_text(encoding="utf-8")
    assert 'src="../screenshots/dashboard.svg"' in tui


def public(cls: type) -> set[str]:
    """The methods and properties a user calls on `cls` (its own, not object's)."""
    return {n for n, v in vars(cls).items() if not n.startswith("_")
            and (inspect.isfunction(v) or isinstance(v, property | classmethod))}


def test_generated_client_reference_documents_every_public_name(site: Path) -> None:
    import devamb.client
    from devamb.client import aio, sync
    from devamb.client import faults as builders

    page = (site / "reference" / "client" / "index.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'<h\d id="(devamb\.client[\w.]*)"', page))
    wanted = {f"devamb.client.{name}" for name in devamb.client.__all__
              if not inspect.ismodule(getattr(devamb.client, name))}  # `faults`: its members
    for owner, cls in [("devamb.client", sync.Client), ("devamb.client", aio.AsyncClient),
                       ("devamb.client.sync", sync.Faults), ("devamb.client.sync", sync.Scenarios),
                       ("devamb.client.sync", sync.Recording),
                       ("devamb.client.aio", aio.AsyncFaults),
                       ("devamb.client.aio", aio.AsyncScenarios),
                       ("devamb.client.aio", aio.AsyncRecording)]:
        wanted |= {f"{owner}.{cls.__name__}.{name}" for name in public(cls)}
    wanted |= {f"devamb.client.faults.{cls.__name__}" for cls in builders.BUILDERS.values()}
    assert len(wanted) > 60, wanted
    assert wanted - ids == set()


def test_generated_reference_pages_are_filled_in(site: Path) -> None:
    from devamb.control.routes import TABLE

    for name in ("profile", "control-api", "events", "filters"):
        page = (site / "reference" / name / "index.html").read_text(encoding="utf-8")
        assert "reference:" not in page and "<table>" in page, name
    api = (site / "reference" / "control-api" / "index.html").read_text(encoding="utf-8")
    assert set(re.findall(r'<h3 id="route-([a-z-]+)"', api)) == {
        r.name.replace("_", "-") for r in TABLE}
