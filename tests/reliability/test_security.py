"""Security on the real servers and in the evidence artifacts.

Auth compares in constant time on both surfaces; the token appears in no log line, metric,
error, stdout/stderr, evidence file or report; session ids are unguessable and never listed.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import shutil

import grpc
import httpx
import pytest
from reliability_support import FIXTURES

import kakeya
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc
from kakeya_evidence.report import write_report
from kakeya_evidence.stages import write_stage
from kakeya_evidence.stages.suite import SuiteConfig, run_suite

URL = "/v1/chat/completions"
PROMPT = list(range(10, 40))


@pytest.fixture
def token() -> str:
    return "tok-" + secrets.token_hex(16)


@pytest.mark.integration
def test_both_surfaces_compare_tokens_with_compare_digest(serve_runtime, token, monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    server = serve_runtime(token=token)
    with (
        kakeya.Client(server.grpc_address, token=token + "x") as client,
        pytest.raises(kakeya.UnauthenticatedError),
    ):
        client.create_session()
    assert compared and compared[-1][1] == token.encode()
    compared.clear()
    headers = {"Authorization": f"Bearer {token[:-1]}"}
    assert httpx.get(f"{server.http_url}/v1/models", headers=headers).status_code == 401
    assert compared and compared[-1][1] == token.encode()


@pytest.mark.integration
def test_the_token_never_reaches_logs_metrics_errors_or_output(
    serve_runtime, token, caplog, capfd
) -> None:
    caplog.set_level(logging.DEBUG)
    server = serve_runtime(token=token)
    seen: list[str] = []
    with (
        kakeya.Client(server.grpc_address, token=token, timeout=60) as client,
        client.create_session(label="auth") as session,
    ):
        session.append(PROMPT)
        assert len(list(session.generate(3))) == 3
    for wrong in (token + "x", token[:-1], f"Basic {token}"):
        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = pb_grpc.RuntimeServiceStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.CreateSession(
                    pb.CreateSessionRequest(), metadata=(("authorization", f"Bearer {wrong}"),)
                )
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            seen += [raised.value.details() or "", str(raised.value.trailing_metadata())]
    with httpx.Client(base_url=server.http_url, timeout=60) as http:
        body = {"model": server.engine.model_id, "messages": [{"role": "user", "content": "hi"}]}
        good = {"Authorization": f"Bearer {token}"}
        assert http.post(URL, json={**body, "max_tokens": 2}, headers=good).status_code == 200
        for wrong in (token + "x", token[:-1]):
            denied = http.post(URL, json=body, headers={"Authorization": f"Bearer {wrong}"})
            assert denied.status_code == 401
            seen += [denied.text, str(denied.headers)]
        denied = http.post(URL, json=body, headers={"Authorization": token})  # not Bearer
        seen += [denied.text, str(denied.headers)]
        metrics = http.get("/metrics", headers=good)
        assert metrics.status_code == 200
        seen.append(metrics.text)
    out, err = capfd.readouterr()
    seen += [out, err, caplog.text]
    leaks = [text for text in seen if token[:-1] in text]
    assert leaks == []


@pytest.mark.slow
def test_evidence_and_every_artifact_hold_no_token(tmp_path, token, monkeypatch) -> None:
    """A failing test that prints the token (as a server's error output might) must not put
    it into junit.xml, the stage files, evidence.json, summary.md or report.html."""
    monkeypatch.setenv("KAKEYA_TOKEN", token)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_" + secrets.token_hex(12))
    tests = tmp_path / "suite"
    shutil.copytree(FIXTURES / "token_output", tests)
    out = tmp_path / "ev"
    outcome = run_suite(SuiteConfig(tests=str(tests), output_dir=str(out), cwd=str(tests)))
    assert (outcome.counts["passed"], outcome.counts["failed"]) == (1, 1)
    for name in ("host_check", "cache_prewarm"):
        write_stage(out, name, {"status": "ok", "duration_s": 0.0})
    write_report(out, parameters={"model": "kakeya/tiny-qwen3"})
    leaking = sorted(
        str(path.relative_to(out))
        for path in out.rglob("*")
        if path.is_file() and token[:-1] in path.read_text(errors="replace")
    )
    assert leaking == [], f"the token is in {leaking}"
    report = (out / "report.html").read_text()
    assert "test_prints_its_environment" in report  # the failure itself is still reported


@pytest.mark.integration
def test_session_ids_are_unguessable_unlisted_and_not_derivable(runtime) -> None:
    with kakeya.Client(runtime.grpc_address, timeout=60) as client:
        sessions = [client.create_session() for _ in range(64)]
        ids = [s.session_id for s in sessions]
        assert len(set(ids)) == len(ids)
        randoms = [i.removeprefix("sess_") for i in ids]
        # >= 128 random bits: 22 or more url-safe base64 characters
        assert all(len(r) >= 22 and re.fullmatch(r"[A-Za-z0-9_-]+", r) for r in randoms)
        assert len({r[:4] for r in randoms}) > 48  # no shared, counter-like prefix
        near = ids[0][:-1] + ("A" if ids[0][-1] != "A" else "B")
        with pytest.raises(kakeya.SessionNotFoundError):
            client.session(near).info()
        with httpx.Client(base_url=runtime.http_url, timeout=30) as http:
            pages = [http.get(path).text for path in ("/metrics", "/healthz", "/v1/models")]
        assert not [i for i in ids if any(i in page for page in pages)]
        for session in sessions:
            session.close()
