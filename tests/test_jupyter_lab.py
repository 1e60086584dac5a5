"""`make lab` serves notebooks/ in JupyterLab with the project's kernel, offline.

The test runs the Makefile's own `lab` recipe (setup taken as done: this venv is the one
under test) on loopback, port 0, with a token; it opens a kernel through the server's REST
API, executes 00_host_check.ipynb cell by cell over the kernel's websocket (the parameters
cell followed by an injected one, as papermill does) and shuts the server down.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
TOKEN = uuid.uuid4().hex
KERNEL = "kakeya"
START_TIMEOUT_S = 90.0
CELL_TIMEOUT_S = 120.0


def ensure_project_kernel() -> None:
    """`make setup` registers the kernel; a venv made otherwise gets it the same way here."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
        if spec.argv and Path(spec.argv[0]).parent == Path(sys.executable).parent:
            return
    except NoSuchKernel:
        pass
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL],
        check=True,
        capture_output=True,
        timeout=60,
    )


def wait_for_server(runtime_dir: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The server's runtime file (port, token) once it answers, or fail with its log."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, "jupyter-lab exited before serving"
        for path in runtime_dir.glob("jpserver-*.json"):
            info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            try:
                api(info, "GET", "/api/status")
                return info
            except OSError:
                pass
        time.sleep(0.5)
    raise AssertionError("jupyter-lab did not serve within the timeout")


def api(info: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{info['port']}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {info['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    return json.loads(text) if text else None


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`make lab` on port 0 with a token; stopped (server shutdown, then the group) after."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    ensure_project_kernel()
    runtime = tmp_path / "runtime"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)}
    env.pop("HF_HUB_OFFLINE", None)  # the recipe itself must set it
    args = f"--port=0 --no-browser --IdentityProvider.token={TOKEN} --ServerApp.open_browser=False"
    log = (tmp_path / "lab.log").open("wb")
    proc = subprocess.Popen(
        ["make", "-o", "setup", "lab", f"VENV={sys.prefix}", f"LAB_ARGS={args}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        info = wait_for_server(runtime, proc)
        yield info
        api(info, "POST", "/api/shutdown")
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        log.close()


def execute(ws: Any, code: str) -> list[dict[str, Any]]:
    """Run one cell over the kernel websocket; its iopub outputs, failing on an error."""
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "session": "t", "version": "5.3"}
    content = {"code": code, "silent": False, "store_history": True, "allow_stdin": False}
    request = {"header": {**header, "username": "test", "date": ""}, "parent_header": {}}
    ws.send(json.dumps({**request, "metadata": {}, "content": content, "channel": "shell"}))
    outputs, deadline = [], time.monotonic() + CELL_TIMEOUT_S
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["channel"] == "iopub" and msg["msg_type"] in ("stream", "execute_result", "error"):
            outputs.append(msg)
        if msg["channel"] == "shell" and msg["msg_type"] == "execute_reply":
            errors = [o["content"] for o in outputs if o["msg_type"] == "error"]
            assert msg["content"]["status"] == "ok", errors or msg["content"]
            return outputs
    raise AssertionError(f"cell did not finish within {CELL_TIMEOUT_S}s: {code[:80]}")


def test_make_lab_serves_the_notebooks_with_the_project_kernel(lab, tmp_path):
    import websocket

    contents = api(lab, "GET", "/api/contents")
    assert {"00_host_check.ipynb", "03_results_report.ipynb"} <= {
        item["name"] for item in contents["content"]
    }
    specs = api(lab, "GET", "/api/kernelspecs")
    assert specs["default"] == KERNEL and KERNEL in specs["kernelspecs"]
    kernel = api(lab, "POST", "/api/kernels", {"name": KERNEL})
    url = f"ws://127.0.0.1:{lab['port']}/api/kernels/{kernel['id']}/channels?token={TOKEN}"
    ws = websocket.create_connection(url, timeout=CELL_TIMEOUT_S)
    try:
        probe = "import os, sys; print(os.environ.get('HF_HUB_OFFLINE'), sys.prefix)"
        text = "".join(o["content"].get("text", "") for o in execute(ws, probe)).split()
        assert text == ["1", sys.prefix]
        notebook = nbformat.read(REPO / "notebooks" / "00_host_check.ipynb", as_version=4)
        out = tmp_path / "evidence"
        for cell in notebook.cells:
            if cell.cell_type == "code":
                execute(ws, cell.source)
                if "parameters" in cell.metadata.get("tags", []):
                    execute(ws, f"output_dir = {str(out)!r}")
    finally:
        ws.close()
        api(lab, "DELETE", f"/api/kernels/{kernel['id']}")
    stage = json.loads((out / "stages" / "host_check.json").read_text(encoding="utf-8"))
    assert stage["status"] == "ok" and stage["host"]["python_executable"].startswith(sys.prefix)
