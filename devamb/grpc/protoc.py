"""`.proto` files compiled to a FileDescriptorSet with grpcio-tools' protoc (run as a child
process so that its messages can be shown), the well-known types included."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

COMPILE_TIMEOUT = 60.0


class CompileError(Exception):
    """protoc refused the files; the message is protoc's."""


def well_known_include() -> str:
    """grpc_tools' folder of google/protobuf/*.proto."""
    import grpc_tools

    return str(Path(grpc_tools.__file__).parent / "_proto")


def compile_protos(files: Sequence[Path], includes: Sequence[Path]) -> bytes:
    """A serialized FileDescriptorSet of `files` and all they import."""
    with tempfile.TemporaryDirectory(prefix="devamb-protoc-") as folder:
        out = os.path.join(folder, "set.pb")
        paths = list(dict.fromkeys(str(p) for p in includes))  # in order, once each
        argv = [sys.executable, "-m", "grpc_tools.protoc", *(f"-I{p}" for p in paths),
                f"-I{well_known_include()}", "--include_imports", f"--descriptor_set_out={out}",
                *(str(f) for f in files)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=COMPILE_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise CompileError(f"protoc took longer than {COMPILE_TIMEOUT:g}s") from None
        if done.returncode != 0 or not os.path.exists(out):
            text = (done.stderr or done.stdout).strip() or f"protoc exited {done.returncode}"
            raise CompileError(text)
        return Path(out).read_bytes()
