"""Profile texts that attack the YAML loader, shared by the profile tests and the adversarial
suite."""

from __future__ import annotations

SERVICE = "services:\n  api:\n    listen: 0\n    targets: {x: echo}\n"  # a minimal valid service


def alias_bomb(levels: int, width: int = 9) -> str:
    """The classic "billion laughs": each level lists the previous one `width` times."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"
