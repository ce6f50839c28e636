"""Reading a profile for export: the validated Profile plus its positioned source.

A `${VAR}` that is not set does not stop an export: header values are exported as the
variable's name, never its value. A variable that is unset reads as a placeholder, and the
exporter refuses an output that would carry a placeholder (the value was needed) or any value
that did come from the environment (a secret)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devamb.engine.assembly import Profile, build_profile
from devamb.profile import display_path
from devamb.profile.env import Interpolator, read_dotenv
from devamb.profile.problems import Problem, ProfileError
from devamb.profile.source import Source, read_source

PLACEHOLDER = "devamb-unset-"


class ExportError(Exception):
    """An export that cannot be written; the message says why and where."""


class _ExportInterpolator(Interpolator):
    """`${VAR}` as usual; a variable set nowhere (and without a default) reads as a placeholder
    instead of being a problem."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values, {})
        self._values = dict(values)
        self.unset: set[str] = set()

    def expand(self, text: str) -> tuple[str, list[str]]:
        result, missing = super().expand(text)
        if missing:
            self.unset.update(missing)
            filled = {**self._values, **{n: PLACEHOLDER + n for n in missing}}
            result, _ = Interpolator(filled, {}).expand(text)  # remembers nothing here
        return result, []


@dataclass(frozen=True)
class Loaded:
    profile: Profile
    source: Source
    secrets: frozenset[str]  # values read from the environment (placeholders left out)
    unset: frozenset[str] = frozenset()  # variables set nowhere: read as placeholders


def load_for_export(path: Path, environ: Mapping[str, str] | None = None) -> Loaded:
    """Raises ProfileError (positioned problems) like `devamb check`."""
    file = display_path(path)
    try:
        source = read_source(path, file)
    except OSError as exc:
        problem = Problem(file, 1, 1, "", f"cannot read profile: {exc.strerror or exc}")
        raise ProfileError([problem]) from None
    values = {**read_dotenv(path.parent / ".env"), **(os.environ if environ is None else environ)}
    interpolator = _ExportInterpolator(values)
    profile = build_profile(source, interpolator, path)
    secrets = frozenset(s for s in profile.secrets if PLACEHOLDER not in s)
    return Loaded(profile, source, secrets, frozenset(interpolator.unset))


def check_output(text: str, loaded: Loaded, what: str) -> None:
    """Refuse `text` if it carries a placeholder or a value read from the environment."""
    lowered = text.lower()  # a host name is written lowercased
    for name in sorted(loaded.unset):
        if (PLACEHOLDER + name).lower() in lowered:
            raise ExportError(
                f"{loaded.source.file}: ${{{name}}} is not set and {what} needs its value "
                f"(only header values may name an unset variable); set it, or write "
                f"${{{name}:-default}}"
            )
    if any(secret.lower() in lowered for secret in loaded.secrets):
        raise ExportError(
            f"{loaded.source.file}: a value read from the environment (${{VAR}}) would be "
            f"written into {what}; devamb never exports secrets: use ${{VAR}} in target "
            f"headers only (exported as a reference), or write the value in the profile"
        )
