"""The committed stubs are exactly what scripts/gen_proto.py generates from proto/."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "inference_engine" / "proto_gen"


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_proto", REPO / "scripts" / "gen_proto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_regenerated_stubs_are_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "proto_gen"
    load_generator().generate(out)
    fresh, committed = tree(out), tree(COMMITTED)
    assert sorted(fresh) == sorted(committed)
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert changed == [], f"stubs drifted; run: python scripts/gen_proto.py ({changed})"


def test_stub_imports_resolve_inside_the_package() -> None:
    grpc_stub = (COMMITTED / "kakeya" / "v1" / "runtime_pb2_grpc.py").read_text()
    assert "from inference_engine.proto_gen.kakeya.v1 import runtime_pb2" in grpc_stub
    assert "\nfrom kakeya." not in grpc_stub  # would resolve to the SDK package


def test_service_exposes_the_six_rpcs() -> None:
    from inference_engine.proto_gen.kakeya.v1 import runtime_pb2

    service = runtime_pb2.DESCRIPTOR.services_by_name["RuntimeService"]
    assert sorted(m.name for m in service.methods) == [
        "AppendTokens",
        "CancelGenerate",
        "CloseSession",
        "CreateSession",
        "Generate",
        "GetSessionInfo",
    ]
    assert service.methods_by_name["Generate"].server_streaming
