"""asyncssh, imported when a bastion is first used (it takes a noticeable part of a second,
and its import warns about DSA, which devamb never offers)."""

from __future__ import annotations

import functools
import warnings
from types import ModuleType


@functools.cache
def asyncssh() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import asyncssh as module
    return module
