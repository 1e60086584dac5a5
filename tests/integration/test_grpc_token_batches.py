"""The cheap stream on the real model: tokens that are ready together go out in one message.

A request with `batch_tokens` gets `TokenBatchEvent`s when its stream falls behind the
model (here: the server's event loop is held busy for a moment); one without the field,
as every client before it sends, still gets one `TokenEvent` per token and nothing it
cannot parse. No token is lost or reordered either way, and the SDK (which asks for
batches) yields the same ids one at a time.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, unknown_fields
from test_core_sessions import history, wait_until

import kakeya
from inference_engine.session.events import GenerationParams, TokenEvent
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc

GENERATE = "/kakeya.v1.RuntimeService/Generate"
STALL_S = 1.0  # long enough for the tiny model to run several tokens ahead, even under load


def stall_event_loop(server, seconds: float) -> None:
    """Holds the server's event loop busy (a slow stream): the decode loop runs on."""
    server._loop.call_soon_threadsafe(time.sleep, seconds)


def old_wire() -> tuple[type, type]:
    """`GenerateRequest` and `GenerateEvent` as compiled before `batch_tokens` existed: the
    descriptor without the request's field, the event's `tokens` and `TokenBatchEvent`."""
    proto = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(proto)
    messages = {message.name: message for message in proto.message_type}
    for message, field in (("GenerateRequest", "batch_tokens"), ("GenerateEvent", "tokens")):
        fields = messages[message].field
        fields.remove(next(f for f in fields if f.name == field))
    proto.message_type.remove(messages["TokenBatchEvent"])
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(proto.SerializeToString())

    def message_class(name: str) -> type:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"kakeya.v1.{name}"))

    return message_class("GenerateRequest"), message_class("GenerateEvent")


def session_with(stub, prompt: list[int]) -> str:
    sid = stub.CreateSession(pb.CreateSessionRequest()).session.session_id
    stub.AppendTokens(pb.AppendTokensRequest(session_id=sid, token_ids=prompt))
    return sid


def reference_tokens(engine, prompt: list[int], max_tokens: int) -> list[int]:
    """The greedy tokens of `prompt`, in-process (batch invariance: the same on any path)."""
    sid = engine.create_session().session_id
    engine.append(sid, prompt)
    events = engine.generate(sid, GenerationParams(max_tokens=max_tokens))
    return [e.token_id for e in events if isinstance(e, TokenEvent)]


def read_stalled(server, call) -> list:
    """Every message of a Generate call, with the server's loop held busy after the first."""
    messages = [next(call)]
    stall_event_loop(server, STALL_S)
    messages.extend(call)
    return messages


def test_tokens_that_pile_up_go_out_together_and_in_order(serve_runtime):
    server = serve_runtime(http=False, max_concurrent=1)
    prompt = history(11, 12, server.engine.vocab_size)
    expected = reference_tokens(server.engine, prompt, 40)
    window = server.engine.config.scheduler.max_unread_batched_tokens
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = pb_grpc.RuntimeServiceStub(channel)
        sid = session_with(stub, prompt)
        request = pb.GenerateRequest(session_id=sid, max_tokens=40, batch_tokens=True)
        messages = read_stalled(server, stub.Generate(request))
    batches = [m.tokens for m in messages if m.WhichOneof("event") == "tokens"]
    assert {m.WhichOneof("event") for m in messages} == {"tokens", "done"}
    assert [t for batch in batches for t in batch.token_ids] == expected
    starts = [sum(len(b.token_ids) for b in batches[:i]) for i in range(len(batches))]
    assert [batch.first_index for batch in batches] == starts
    sizes = [len(batch.token_ids) for batch in batches]
    assert 2 <= max(sizes) <= window and len(batches) < len(expected)
    assert messages[-1].done.generated_tokens == len(expected)


def test_a_client_that_predates_the_field_gets_one_token_per_message(serve_runtime):
    """The old client's own descriptor parses every message, with no unknown fields left
    over, and it loses no token, also when tokens pile up on the server."""
    server = serve_runtime(http=False, max_concurrent=1)
    prompt = history(12, 12, server.engine.vocab_size)
    expected = reference_tokens(server.engine, prompt, 24)
    old_request, old_event = old_wire()
    with grpc.insecure_channel(server.grpc_address) as channel:
        sid = session_with(pb_grpc.RuntimeServiceStub(channel), prompt)
        generate = channel.unary_stream(
            GENERATE,
            request_serializer=old_request.SerializeToString,
            response_deserializer=old_event.FromString,
        )
        messages = read_stalled(server, generate(old_request(session_id=sid, max_tokens=24)))
    kinds = [m.WhichOneof("event") for m in messages]
    assert kinds == ["token"] * len(expected) + ["done"]
    assert [m.token.token_id for m in messages[:-1]] == expected
    assert [m.token.index for m in messages[:-1]] == list(range(len(expected)))
    assert all(len(unknown_fields.UnknownFieldSet(m)) == 0 for m in messages)


def test_the_sdk_yields_batched_tokens_one_by_one_and_keeps_the_rest_of_a_batch(
    serve_runtime,
):
    """Leaving the loop in the middle of a batch stops the server; the generation still
    holds every token the server put into the history."""
    server = serve_runtime(http=False, max_concurrent=1)
    prompt = history(13, 12, server.engine.vocab_size)
    expected = reference_tokens(server.engine, prompt, 200)
    with kakeya.Client(server.grpc_address, timeout=60) as client:
        session = client.create_session()
        session.append(prompt)
        assert list(session.generate(30, batch_tokens=False)) == expected[:30]
        session.close()
        session = client.create_session()
        session.append(prompt)
        generation = session.generate(200)
        tokens = iter(generation)
        first = next(tokens)
        stall_event_loop(server, STALL_S)
        second = next(tokens)  # the first of a batch that piled up during the stall
        tokens.close()  # leave the loop here
        info = session.info()
    assert [first, second] == expected[:2]
    assert generation.done and generation.generated_tokens == len(generation.token_ids)
    assert len(generation.token_ids) > 2  # the rest of the batch, read by the SDK
    assert generation.token_ids == expected[: len(generation.token_ids)]
    assert info.history_tokens == len(prompt) + generation.generated_tokens


def test_a_batched_consumer_lets_its_generation_run_its_window_ahead(make_engine):
    """The decode loop runs `max_unread_batched_tokens` past what a batched consumer has
    taken, then waits for it; the next batch is everything that piled up."""
    engine = make_engine(max_concurrent=1)
    prompt = history(14, 12, engine.vocab_size)
    sid = engine.create_session().session_id
    engine.append(sid, prompt)
    window = engine.config.scheduler.max_unread_batched_tokens

    def history_tokens() -> int:
        return engine.info(sid).history_tokens

    async def consume() -> tuple[int, bool, int, list]:
        batches = engine.agenerate_batches(sid, GenerationParams(max_tokens=200))
        taken = sum(isinstance(e, TokenEvent) for e in await anext(batches))
        bound = len(prompt) + taken + window
        reached = await asyncio.to_thread(wait_until, lambda: history_tokens() >= bound, 60)
        await asyncio.sleep(0.3)  # the loop would run on here if it were not held back
        held = history_tokens() - bound
        following = await anext(batches)
        await batches.aclose()
        return taken, reached, held, following

    taken, reached, held, following = asyncio.run(consume())
    assert taken >= 1 and reached and held == 0
    assert [isinstance(e, TokenEvent) for e in following] == [True] * window
