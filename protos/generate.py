"""Regenerate the Python modules from the .proto files: the only way they change.

python protos/generate.py          # write protos/*_pb2*.py and .pyi
python protos/generate.py --check  # exit 1 if the checked-in modules are stale (CI)
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]  # grpcio-tools ships no stubs

ROOT = Path(__file__).resolve().parent.parent
PROTOS = sorted(p.relative_to(ROOT) for p in (ROOT / "protos").glob("*.proto"))
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def _plugin(name: str) -> str:
    # mypy-protobuf's plugins sit beside the interpreter in a venv; fall back to PATH.
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"generate: {name} not found; pip install mypy-protobuf")
    return found


def generate(out: Path) -> None:
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *(str(p) for p in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("generate: protoc failed")


def generated_names() -> list[str]:
    return [p.stem + s for p in PROTOS for s in SUFFIXES]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if checked-in code is stale")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = []
        for name in generated_names():
            fresh, current = Path(tmp) / "protos" / name, ROOT / "protos" / name
            if check:
                if not current.exists() or not filecmp.cmp(fresh, current, shallow=False):
                    stale.append(name)
            else:
                shutil.copyfile(fresh, current)
    if stale:
        print("generated protobuf modules are stale: " + ", ".join(stale), file=sys.stderr)
        print("run: python protos/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
