"""The sync SDK against the real gRPC server and the embedded model (no doubles)."""

from __future__ import annotations

import threading

import pytest

import kakeya
from kakeya.v1 import runtime_pb2

PROMPT = list(range(10, 40))


def greedy(client: kakeya.Client, history: list[int], max_tokens: int = 8) -> list[int]:
    with client.create_session() as session:
        session.append(history)
        return list(session.generate(max_tokens))


def test_append_generate_info_close(sdk_client, runtime) -> None:
    session = sdk_client.create_session(label="round-trip")
    assert session.append(PROMPT) == len(PROMPT)
    generation = session.generate(max_tokens=6)
    tokens = list(generation)
    assert len(tokens) == 6 and all(0 <= t < runtime.engine.vocab_size for t in tokens)
    assert generation.stop_reason is kakeya.StopReason.MAX_TOKENS
    assert generation.generated_tokens == 6 and generation.token_ids == tokens
    assert generation.prefill_tokens == len(PROMPT)
    assert 0 < generation.prefill_s <= generation.total_s
    info = session.info()
    assert (info.label, info.history_tokens) == ("round-trip", len(PROMPT) + 6)
    assert info.kv_live_bytes > 0 and not info.generating
    store = runtime.engine.config.store
    assert info.server == kakeya.ServerInfo(store.max_sessions, kakeya.WhenFull.REJECT)
    session.close()
    session.close()
    with pytest.raises(kakeya.SessionClosedError):
        session.info()
    with pytest.raises(kakeya.SessionNotFoundError):
        sdk_client.session(session.session_id).info()


def test_eos_stops_generation(sdk_client) -> None:
    first = greedy(sdk_client, PROMPT, max_tokens=1)[0]
    with sdk_client.create_session(eos_token_ids=[first]) as session:
        session.append(PROMPT)
        generation = session.generate(max_tokens=10)
        assert list(generation) == [first]
        assert generation.stop_reason is kakeya.StopReason.EOS


def test_inv3_chunking_gives_identical_streams_across_the_window(sdk_client) -> None:
    history = [(7 * i) % 4000 + 5 for i in range(100)]  # crosses sink 4 + window 60
    reference = greedy(sdk_client, history, max_tokens=8)
    for chunks in ([1] * 100, [33, 33, 34], [3, 61, 36]):
        with sdk_client.create_session() as session:
            start = 0
            for size in chunks:
                session.append(history[start : start + size])
                start += size
            generation = session.generate(max_tokens=8)
            assert list(generation) == reference, chunks
            assert generation.truncated_tokens > 0


def test_interleaved_sessions_equal_isolated_ones(sdk_client) -> None:
    prompts = [PROMPT, list(range(200, 230))]
    isolated = []
    for prompt in prompts:
        with sdk_client.create_session() as session:
            session.append(prompt)
            isolated.append([list(session.generate(4)), list(session.generate(4))])
    a, b = (sdk_client.create_session() for _ in prompts)
    with a, b:
        a.append(prompts[0])
        b.append(prompts[1])
        turns = [[list(a.generate(4))], [list(b.generate(4))]]
        turns[1].append(list(b.generate(4)))
        turns[0].append(list(a.generate(4)))
    assert turns == isolated


def test_every_error_row_raises_its_typed_exception(serve_runtime) -> None:
    server = serve_runtime(max_sessions=2, max_concurrent=1, max_queue=0, token="row-token")
    with kakeya.Client(server.grpc_address, token="row-token", timeout=30) as client:
        session = client.create_session()
        session.append(PROMPT)
        with pytest.raises(kakeya.InvalidArgumentError):
            session.append([-1])
        with pytest.raises(kakeya.SessionNotFoundError):
            client.session("sess_unknown").info()
        running = iter(session.generate(max_tokens=4000))
        next(running)  # holds the only slot; its reader is still there
        with pytest.raises(kakeya.FailedPreconditionError):  # another handle on the session
            list(client.session(session.session_id).generate(max_tokens=2))
        other = client.create_session()
        other.append(PROMPT)
        with pytest.raises(kakeya.ResourceExhaustedError):
            list(other.generate(max_tokens=2))
        running.close()
    with (
        kakeya.Client(server.grpc_address, token="wrong") as client,
        pytest.raises(kakeya.UnauthenticatedError),
    ):
        client.create_session()
    server.stop()
    with (
        kakeya.Client(server.grpc_address, timeout=5) as client,
        pytest.raises(kakeya.RuntimeUnavailableError),
    ):
        client.create_session()
    roomy = serve_runtime(http=False)
    with kakeya.Client(roomy.grpc_address) as client, client.create_session() as session:
        session.append(PROMPT)
        with pytest.raises(kakeya.DeadlineExceededError):
            list(session.generate(max_tokens=4000, timeout=0.2))


BAD_APPENDS = {
    "negative id": [-1],
    "id == vocab": None,  # filled with the vocab size
    "empty": [],
    "over the limit": [1] * 8193,
}


@pytest.mark.parametrize("case", list(BAD_APPENDS))
def test_bad_appends_leave_history_unchanged(sdk_client, runtime, case: str) -> None:
    ids = BAD_APPENDS[case] if BAD_APPENDS[case] is not None else [runtime.engine.vocab_size]
    with sdk_client.create_session() as session:
        session.append(PROMPT)
        with pytest.raises(kakeya.InvalidArgumentError):
            session.append(ids)
        assert session.info().history_tokens == len(PROMPT)
        assert len(list(session.generate(2))) == 2  # still serving


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_tokens": 0},
        {"max_tokens": 4097},
        {"max_tokens": 4, "temperature": float("nan")},
        {"max_tokens": 4, "temperature": -0.5},
        {"max_tokens": 4, "top_p": 0.0},
        {"max_tokens": 4, "top_k": -1},
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()),
)
def test_bad_generate_params_leave_history_unchanged(sdk_client, kwargs) -> None:
    with sdk_client.create_session() as session:
        session.append(PROMPT)
        with pytest.raises(kakeya.InvalidArgumentError):
            list(session.generate(**kwargs))
        info = session.info()
        assert info.history_tokens == len(PROMPT) and not info.generating
        assert len(list(session.generate(2))) == 2


def test_auth_on_and_off(serve_runtime) -> None:
    server = serve_runtime(token="s3cret-token", http=False)
    with kakeya.Client(server.grpc_address, token="s3cret-token") as client:
        assert client.healthy()
        assert greedy(client, PROMPT, 2)
    for token in (None, "s3cret-toke", "s3cret-token-"):
        with kakeya.Client(server.grpc_address, token=token) as client:
            assert client.healthy()  # health is exempt
            with pytest.raises(kakeya.UnauthenticatedError):
                client.create_session()


def test_breaking_out_cancels_and_frees_the_slot(serve_runtime) -> None:
    server = serve_runtime(max_concurrent=1, max_queue=4, queue_timeout_s=20.0, http=False)
    with kakeya.Client(server.grpc_address, timeout=60) as client:
        first = client.create_session()
        first.append(PROMPT)
        generation = first.generate(max_tokens=4000)
        for index, _ in enumerate(generation):
            if index == 2:
                break
        assert generation.stop_reason is kakeya.StopReason.CANCELLED
        # The only slot must be free again: this waits in the queue until it is.
        assert len(greedy(client, PROMPT, 3)) == 3
        info = first.info()
        assert not info.generating and info.history_tokens < len(PROMPT) + 4000
        assert len(list(first.generate(2))) == 2


def test_eight_concurrent_sessions_match_sequential(sdk_client) -> None:
    prompts = [[(31 * i + 7 * k) % 4000 + 5 for k in range(24)] for i in range(8)]
    expected = [greedy(sdk_client, p, 6) for p in prompts]
    results: list[list[int] | BaseException] = [[] for _ in prompts]
    start = threading.Barrier(len(prompts))

    def run(index: int) -> None:
        try:
            start.wait()
            results[index] = greedy(sdk_client, prompts[index], 6)
        except BaseException as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results == expected


def test_session_ids_are_unguessable_and_never_listed(sdk_client, runtime) -> None:
    sessions = [sdk_client.create_session() for _ in range(4)]
    ids = [s.session_id for s in sessions]
    assert len(set(ids)) == len(ids) and all(len(i) >= 20 for i in ids)
    service = runtime_pb2.DESCRIPTOR.services_by_name["RuntimeService"]
    assert not [m.name for m in service.methods if "List" in m.name]
    import httpx

    metrics = httpx.get(f"{runtime.http_url}/metrics").text
    assert not [i for i in ids if i in metrics]
    for session in sessions:
        session.close()


def test_binds_loopback(runtime) -> None:
    assert runtime.grpc_address.startswith("127.0.0.1:")
    assert runtime.http_url.startswith("http://127.0.0.1:")
