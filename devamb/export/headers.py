"""Header values for Envoy: `${VAR}` becomes `%ENVIRONMENT(VAR)%`, never the value.

Envoy reads the variable from its own environment at each request; the Kubernetes objects fill
it from a Secret. A `${VAR:-default}`'s default is not exported (the report says so)."""

from __future__ import annotations

import re
from typing import Any

from devamb.export.context import Config, Context
from devamb.profile.source import Path_

_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def envoy_value(ctx: Context, written: str, path: Path_) -> str:
    """The written header value as an Envoy header format string."""
    out: list[str] = []
    last = 0
    for m in _REF.finditer(written):
        out.append(written[last:m.start()].replace("%", "%%"))
        last = m.end()
        if m.group(0) == "$$":
            out.append("$")
            continue
        name = m.group(1)
        ctx.env_vars.add(name)
        out.append(f"%ENVIRONMENT({name})%")
        if m.group(2) is not None:
            ctx.note(path, f"${{{name}}}'s default is not exported: Envoy reads {name} from its "
                           "environment (from a Kubernetes Secret in the k8s export)")
    out.append(written[last:].replace("%", "%%"))
    return "".join(out)


def headers_to_add(ctx: Context, path: Path_) -> list[Config]:
    """`request_headers_to_add` for the `headers:` mapping at `path` (as written)."""
    written: Any = ctx.raw(path)
    if not isinstance(written, dict):
        return []
    out: list[Config] = []
    for name, value in written.items():
        text = envoy_value(ctx, str(value), (*path, name))
        out.append({"header": {"key": str(name), "value": text},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"})
    return out
