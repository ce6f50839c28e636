"""Masks values that came from `${VAR}` wherever the engine writes text: logs, status, records."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "••••"


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text


class RedactingFilter(logging.Filter):
    """Applied to a handler: every record is formatted, then masked, before it is written."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.redactor(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
