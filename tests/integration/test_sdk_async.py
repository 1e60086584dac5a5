"""The asyncio SDK against the real gRPC server and the embedded model (no doubles)."""

from __future__ import annotations

import asyncio

import pytest

import kakeya

PROMPT = list(range(10, 40))


async def agreedy(client: kakeya.AsyncClient, history: list[int], max_tokens: int = 6) -> list[int]:
    async with await client.create_session() as session:
        await session.append(history)
        return [t async for t in session.generate(max_tokens)]


def test_async_round_trip_matches_sync(runtime, sdk_client) -> None:
    with sdk_client.create_session() as session:
        session.append(PROMPT)
        expected = list(session.generate(6))

    async def main() -> None:
        async with kakeya.AsyncClient(runtime.grpc_address, timeout=60) as client:
            assert await client.healthy()
            session = await client.create_session(label="async")
            assert await session.append(PROMPT) == len(PROMPT)
            generation = session.generate(6)
            assert [t async for t in generation] == expected
            assert generation.stop_reason is kakeya.StopReason.MAX_TOKENS
            assert generation.generated_tokens == 6 and generation.prefill_tokens == len(PROMPT)
            info = await session.info()
            assert (info.label, info.history_tokens) == ("async", len(PROMPT) + 6)
            assert info.server is not None and info.server.when_full is kakeya.WhenFull.REJECT
            await session.close()
            await session.close()
            with pytest.raises(kakeya.SessionClosedError):
                await session.append([1])
            with pytest.raises(kakeya.SessionNotFoundError):
                await client.session(session.session_id).info()

    asyncio.run(main())


def test_async_errors_are_typed(serve_runtime) -> None:
    server = serve_runtime(token="async-token", http=False)

    async def main() -> None:
        async with kakeya.AsyncClient(server.grpc_address, token="async-token") as client:
            session = await client.create_session()
            await session.append(PROMPT)
            with pytest.raises(kakeya.InvalidArgumentError):
                await session.append([server.engine.vocab_size])
            with pytest.raises(kakeya.InvalidArgumentError):
                [t async for t in session.generate(0)]
            with pytest.raises(kakeya.DeadlineExceededError):
                [t async for t in session.generate(4000, timeout=0.2)]
            assert (await session.info()).history_tokens >= len(PROMPT)
        async with kakeya.AsyncClient(server.grpc_address, token="nope") as client:
            with pytest.raises(kakeya.UnauthenticatedError):
                await client.create_session()

    asyncio.run(main())


def test_async_break_cancels_and_frees_the_slot(serve_runtime) -> None:
    server = serve_runtime(max_concurrent=1, max_queue=4, queue_timeout_s=20.0, http=False)

    async def main() -> None:
        async with kakeya.AsyncClient(server.grpc_address, timeout=60) as client:
            first = await client.create_session()
            await first.append(PROMPT)
            generation = first.generate(4000)
            async for token_id in generation:  # a plain break, no context manager
                assert token_id >= 0
                break
            assert len(await agreedy(client, PROMPT, 3)) == 3  # queued until the slot frees
            assert generation.stop_reason is kakeya.StopReason.CANCELLED
            assert not (await first.info()).generating

    asyncio.run(main())


def test_async_eight_concurrent_sessions_match_sequential(runtime) -> None:
    prompts = [[(13 * i + 3 * k) % 4000 + 5 for k in range(20)] for i in range(8)]

    async def main() -> None:
        async with kakeya.AsyncClient(runtime.grpc_address, timeout=120) as client:
            sequential = [await agreedy(client, p) for p in prompts]
            concurrent = await asyncio.gather(*(agreedy(client, p) for p in prompts))
            assert list(concurrent) == sequential

    asyncio.run(main())
