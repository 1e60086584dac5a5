"""The SDK owns the wire: `kakeya/v1/` is exactly protoc's output from proto/, unrewritten."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "kakeya" / "v1"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", REPO / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
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
    load_generator().generate(tmp_path)
    fresh, committed = tree(tmp_path / "kakeya" / "v1"), tree(COMMITTED)
    assert sorted(fresh) == sorted(committed)
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert changed == [], f"stubs drifted; run: python scripts/gen_proto.py ({changed})"


def test_generation_writes_only_the_stub_package(tmp_path: Path) -> None:
    (tmp_path / "kakeya").mkdir()
    (tmp_path / "kakeya" / "client.py").write_text("kept\n")
    (tmp_path / "kakeya" / "v1").mkdir()
    (tmp_path / "kakeya" / "v1" / "stale_pb2.py").write_text("gone\n")
    load_generator().generate(tmp_path)
    assert (tmp_path / "kakeya" / "client.py").read_text() == "kept\n"
    assert not (tmp_path / "kakeya" / "v1" / "stale_pb2.py").exists()


def test_committed_stubs_are_protocs_output_unrewritten(tmp_path: Path) -> None:
    """Every stub is byte for byte what protoc and its plugins wrote; only `__init__.py` is
    added (protoc writes no package files)."""
    load_generator().run_protoc(tmp_path)
    raw = tree(tmp_path / "kakeya" / "v1")
    assert sorted(raw) == sorted(set(tree(COMMITTED)) - {"__init__.py"})
    assert all(raw[name] == (COMMITTED / name).read_bytes() for name in raw)
    grpc_stub = raw["runtime_pb2_grpc.py"].decode()
    assert "\nfrom kakeya.v1 import runtime_pb2 as " in grpc_stub  # the SDK package itself


def test_service_exposes_the_six_rpcs() -> None:
    from kakeya.v1 import runtime_pb2

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
