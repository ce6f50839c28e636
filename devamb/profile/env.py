"""`${VAR}` interpolation from the environment and a `.env` file beside the profile.

Values that come from the environment are secrets: the profile remembers them so that logs,
status output and recordings can mask them, and error messages quote the raw `${VAR}` text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from devamb.profile import display_path
from devamb.profile.problems import Problem, ProfileError
from devamb.profile.source import read_text

_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
MIN_SECRET_LENGTH = 6  # shorter values (and plain numbers: ports) would mask unrelated text


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; `export ` prefixes, quotes and `#` comments are understood.

    Raises ProfileError when the file cannot be read, is too large or is not UTF-8."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    file = display_path(path)
    try:
        text = read_text(path, file)
    except OSError as exc:
        problem = Problem(file, 1, 1, "", f"cannot read .env: {exc.strerror or exc}")
        raise ProfileError([problem]) from None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


class Interpolator:
    """Expands `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`."""

    def __init__(self, environ: Mapping[str, str], dotenv: Mapping[str, str]) -> None:
        self._environ = environ
        self._dotenv = dotenv
        self.secrets: set[str] = set()

    @classmethod
    def beside(cls, profile: Path, environ: Mapping[str, str] | None = None) -> Interpolator:
        return cls(os.environ if environ is None else environ, read_dotenv(profile.parent / ".env"))

    def remember(self, value: str) -> None:
        """Treat `value` as a secret (a `${VAR}` value, a password written in a URL), unless it
        is too short or a plain number to mask without masking unrelated text."""
        if len(value) >= MIN_SECRET_LENGTH and not value.isdigit():
            self.secrets.add(value)

    def expand(self, text: str) -> tuple[str, list[str]]:
        """The expanded text and the names of variables that were not set."""
        missing: list[str] = []

        def replace(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, default = m.group(1), m.group(2)
            value = self._environ.get(name, self._dotenv.get(name))
            if value is None:
                if default is not None:
                    return default
                missing.append(name)
                return ""
            self.remember(value)
            return value

        if "$" not in text:
            return text, missing
        return _REF.sub(replace, text), missing
