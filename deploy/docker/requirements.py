"""The trainer image's requirements: the lock's pins with the CPU build of torch.

``uv.lock`` resolves torch from PyPI, whose Linux wheel needs CUDA (triton and fifteen-odd
``nvidia-*`` packages, several GB). The trainer image trains on CPU, so its build exports
the lock (``uv export --no-hashes``), and this script rewrites ``torch==X`` to ``torch==X+cpu``
(served by PyTorch's CPU index, https://download.pytorch.org/whl/cpu) and drops the CUDA
packages only torch needs. Every other pin stays as locked. Standard library only: it runs
in the image's build stage before anything is installed.

    python deploy/docker/requirements.py uv-export.txt > requirements-cpu.txt
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

#: packages that only torch's CUDA build needs (triton, NVIDIA's CUDA libraries)
CUDA_ONLY = re.compile(r"^(nvidia-[a-z0-9-]+|triton|cuda-[a-z0-9-]+)$")
_REQ = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)(?P<rest>.*)$")


class RequirementsError(Exception):
    """The exported requirements are not what this script can rewrite (no torch pin, hashes)."""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def cpu_torch(lines: Iterable[str]) -> list[str]:
    """``lines`` of ``uv export --no-hashes`` with torch pinned to its ``+cpu`` build and the
    CUDA-only packages removed; comments and other pins unchanged.

    Raises :class:`RequirementsError` when there is no ``torch==`` pin or the export carries
    hashes (a ``+cpu`` wheel would not match the lock's hashes).
    """
    out: list[str] = []
    found = False
    for line in lines:
        line = line.rstrip("\n")
        if line.lstrip().startswith("--hash"):
            raise RequirementsError("export with --no-hashes: the +cpu wheel has other hashes")
        match = _REQ.match(line.strip())
        if match is None:
            out.append(line)
            continue
        name = _normal(match["name"])
        if CUDA_ONLY.match(name):
            continue
        if name == "torch":
            found = True
            version = match["version"].split("+", 1)[0]
            out.append(f"torch=={version}+cpu{match['rest']}")
            continue
        out.append(line)
    if not found:
        raise RequirementsError(
            "no torch== pin in the export (was it exported with --extra trainer?)"
        )
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        lines = cpu_torch(Path(argv[1]).read_text(encoding="utf-8").splitlines())
    except (OSError, RequirementsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
