"""Whether a committed ``.proto``'s generated stubs are what ``make proto`` makes of it now."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import pytest

from . import REPO


def stale_stubs(proto: Path, tmp_path: Path) -> list[str]:
    """The stubs beside ``proto`` (``*_pb2.py``, ``*_pb2.pyi``, ``*_pb2_grpc.py``) that differ
    from what grpc_tools generates from it, run as the Makefile runs it (from the repository
    root, so the imports in the stubs are the same)."""
    protoc = pytest.importorskip("grpc_tools.protoc")
    relative = proto.resolve().relative_to(REPO)
    src, out = tmp_path / "src", tmp_path / "out"
    (src / relative.parent).mkdir(parents=True)
    (out / relative.parent).mkdir(parents=True)
    shutil.copy(proto, src / relative)
    rc = protoc.main(["protoc", f"-I{src}", f"--python_out={out}", f"--pyi_out={out}",
                      f"--grpc_python_out={out}", str(src / relative)])
    assert rc == 0, f"protoc failed on {relative}"
    stem = proto.stem
    return [name for name in (f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py")
            if not filecmp.cmp(out / relative.parent / name, proto.parent / name, shallow=False)]
