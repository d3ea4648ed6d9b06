"""Generates the gRPC stubs of ``schemas/ulasan.proto`` into ``ulasan/core/grpc_gen/``."""

from __future__ import annotations

from pathlib import Path

from producers.gateway.errors import GatewayError

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "schemas" / "ulasan.proto"
PACKAGE = "ulasan/core/grpc_gen"
GENERATED = ("ulasan_pb2.py", "ulasan_pb2.pyi", "ulasan_pb2_grpc.py")


def generate(out_root: Path = ROOT) -> list[Path]:
    """Run protoc (grpcio-tools, a dev dependency) so the stubs import as
    ``ulasan.core.grpc_gen.ulasan_pb2``; return the files written under ``out_root``."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:
        raise GatewayError("grpcio-tools is not installed (a dev dependency): `make venv`") from exc
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    (out_root / PACKAGE).mkdir(parents=True, exist_ok=True)
    # map the proto into the package path so the generated imports are absolute and correct
    args = [
        "protoc",
        f"-I{PACKAGE}={PROTO.parent}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"{PACKAGE}/{PROTO.name}",
    ]
    if protoc.main(args) != 0:
        raise GatewayError(f"protoc failed on {PROTO}")
    return [out_root / PACKAGE / name for name in GENERATED]
