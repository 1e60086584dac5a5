"""`pip install kakeya` as a user of the runtime does it: the SDK alone, against a server.

A wheel built from this repository goes into a fresh virtual environment with no extras
(dependencies from the package index, or pip's cache). There: no torch, the SDK imports
and generates against a real server started from the suite's environment, the runtime's
and the pipeline's commands exit 2 naming the extra to install.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGING_INPUTS = ("pyproject.toml", "README.md", "LICENSE")
PACKAGES = ("kakeya", "inference_engine", "kakeya_evidence")
BUILD_WHEEL = (
    "import sys\nfrom setuptools import build_meta\nprint(build_meta.build_wheel(sys.argv[1]))\n"
)
CLIENT = """
import importlib.util, json, sys
import kakeya

address, prompt = sys.argv[1], json.loads(sys.argv[2])
with kakeya.Client(address, timeout=60) as client, client.create_session() as session:
    session.append(prompt)
    generation = session.generate(8)
    tokens = list(generation)
    print(json.dumps({
        "tokens": tokens,
        "stop_reason": generation.stop_reason.name,
        "server": session.info().server.max_sessions,
        "torch_importable": importlib.util.find_spec("torch") is not None,
        "runtime_loaded": sorted(
            m for m in sys.modules if m.split(".")[0] in ("torch", "inference_engine")
        ),
        "typed": importlib.util.find_spec("kakeya").submodule_search_locations[0],
    }))
"""


def reference_tokens(engine, prompt: list[int], max_tokens: int) -> list[int]:
    """Greedy tokens of `prompt` in the server's own process."""
    from inference_engine.session.events import GenerationParams, TokenEvent

    session_id = engine.create_session().session_id
    engine.append(session_id, prompt)
    events = engine.generate(session_id, GenerationParams(max_tokens=max_tokens))
    return [event.token_id for event in events if isinstance(event, TokenEvent)]


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment holding `kakeya` with no extras; returns its bin/ directory."""
    root = tmp_path_factory.mktemp("client-only")
    source = root / "source"  # a copy, so the build writes nothing into the repository
    source.mkdir()
    for name in PACKAGING_INPUTS:
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for package in PACKAGES:
        shutil.copytree(REPO / package, source / package, ignore=ignore)
    built = run([sys.executable, "-c", BUILD_WHEEL, str(root)], cwd=source, check=True)
    wheel = root / built.stdout.strip().splitlines()[-1]
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = run([sys.executable, "-m", "pip", "--python", str(python), "install", str(wheel)])
    assert install.returncode == 0, install.stdout + install.stderr
    return venv / "bin"


@pytest.mark.slow
def test_the_plain_install_holds_the_sdk_and_no_runtime(client_venv: Path) -> None:
    listed = run([sys.executable, "-m", "pip", "--python", str(client_venv / "python"), "list"])
    names = {line.split()[0].lower() for line in listed.stdout.splitlines()[2:]}
    assert {"kakeya", "grpcio", "protobuf", "grpcio-health-checking"} <= names
    assert not names & {"torch", "transformers", "tokenizers", "fastapi", "grpcio-reflection"}


@pytest.mark.slow
def test_the_sdk_alone_generates_against_a_server(client_venv: Path, serve_runtime) -> None:
    server = serve_runtime(http=False)
    prompt = [5, 17, 3, 99, 42, 7, 250, 11]
    expected = reference_tokens(server.engine, prompt, 8)
    client = [str(client_venv / "python"), "-I", "-c", CLIENT]  # -I: not this checkout
    out = run([*client, server.grpc_address, json.dumps(prompt)], cwd=client_venv)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["tokens"] == expected and result["stop_reason"] == "MAX_TOKENS"
    assert result["server"] == server.engine.config.store.max_sessions
    assert result["torch_importable"] is False and result["runtime_loaded"] == []
    assert Path(result["typed"]).is_relative_to(client_venv.parent)  # the installed copy
    assert (Path(result["typed"]) / "py.typed").is_file()
    assert (Path(result["typed"]) / "v1" / "runtime_pb2_grpc.pyi").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "command, extra",
    [
        (["kakeya-runtime", "serve", "--grpc-port", "0"], "runtime"),
        (["kakeya-runtime", "prewarm"], "runtime"),
        (["kakeya-evidence", "run"], "evidence"),
    ],
)
def test_the_runtime_commands_name_the_extra_to_install(
    client_venv: Path, command: list[str], extra: str
) -> None:
    out = run([str(client_venv / command[0]), *command[1:]], cwd=client_venv)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"install kakeya[{extra}]" in out.stderr
    assert "Traceback" not in out.stderr
