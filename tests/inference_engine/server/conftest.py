"""Unit-test fixtures for the serving surfaces: the project's real tokenizer, a scripted engine."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import pytest

from inference_engine.config import RuntimeConfig
from inference_engine.errors import RuntimeFault, SessionNotFound
from inference_engine.metrics import RuntimeMetrics
from inference_engine.session.events import (
    DoneEvent,
    Event,
    GenerationParams,
    SessionInfo,
    StopReason,
    TokenEvent,
)


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded model's byte-level BPE tokenizer, built in-process (no HF cache)."""
    from inference_engine.models.tokenizer import build_tokenizer

    return build_tokenizer()


class ScriptedEngine:
    """A stand-in engine for unit tests of one surface module: it plays back `tokens`."""

    model_id = "kakeya/scripted"
    device = "cpu"
    dtype = "float32"
    vocab_size = 4096

    def __init__(self, tokenizer, tokens: Sequence[int] = (), stop=StopReason.MAX_TOKENS) -> None:
        self.tokenizer = tokenizer
        self.config = RuntimeConfig()
        self.metrics = RuntimeMetrics()
        self.bug: Exception | None = None  # raised like a fault, but not a RuntimeFault
        self.bug_at_token = 0  # agenerate raises `bug` in place of this token
        self.tokens = list(tokens)
        self.stop = stop
        self.fault: RuntimeFault | None = None
        self.sessions: dict[str, list[int]] = {}
        self.closed: list[str] = []
        self.params: list[GenerationParams] = []
        self.batch_size = 3  # agenerate_batches plays back this many events at a time
        self._ids = itertools.count()

    def _info(self, session_id: str) -> SessionInfo:
        history = self.sessions.get(session_id)
        if history is None:
            raise SessionNotFound(f"session {session_id} not found")
        return SessionInfo(session_id, "", (), len(history), len(history), 0, 0, 0, 0.0, 0, False)

    def create_session(self, eos_token_ids: Sequence[int] = (), label: str = "") -> SessionInfo:
        session_id = f"s{next(self._ids)}"
        self.sessions[session_id] = []
        return replace(self._info(session_id), label=label, eos_token_ids=tuple(eos_token_ids))

    def append(self, session_id: str, token_ids: Sequence[int]) -> int:
        self._info(session_id)
        self.sessions[session_id].extend(token_ids)
        return len(self.sessions[session_id])

    def info(self, session_id: str) -> SessionInfo:
        if self.bug is not None:
            raise self.bug
        return self._info(session_id)

    def close(self, session_id: str) -> None:
        self._info(session_id)
        del self.sessions[session_id]
        self.closed.append(session_id)

    # -- the EngineClient protocol the adapters use ------------------------------------
    max_concurrent = 4
    decode_lanes = None

    async def acreate_session(
        self, eos_token_ids: Sequence[int] = (), label: str = ""
    ) -> SessionInfo:
        return self.create_session(eos_token_ids, label)

    async def aappend(self, session_id: str, token_ids: Sequence[int]) -> int:
        return self.append(session_id, token_ids)

    async def ainfo(self, session_id: str) -> SessionInfo:
        return self.info(session_id)

    async def aclose(self, session_id: str) -> None:
        self.close(session_id)

    async def acancel_generate(self, session_id: str) -> bool:
        self._info(session_id)
        return False

    async def run_blocking(self, fn, *args):
        return fn(*args)

    def shutdown(self) -> None:
        pass

    async def agenerate(self, session_id: str, params: GenerationParams) -> AsyncIterator[Event]:
        self.params.append(params)
        if self.fault is not None:
            raise self.fault
        self._info(session_id)
        emitted = self.tokens[: params.max_tokens]
        for index, token_id in enumerate(emitted):
            if self.bug is not None and index == self.bug_at_token:
                raise self.bug
            yield TokenEvent(token_id, index)
        yield DoneEvent(self.stop, len(emitted), 3, 0.01, 0.02, 3 + len(emitted))

    async def agenerate_batches(
        self, session_id: str, params: GenerationParams
    ) -> AsyncIterator[list[Event]]:
        """`agenerate`'s events, `batch_size` at a time (the last batch may be shorter)."""
        batch: list[Event] = []
        async for event in self.agenerate(session_id, params):
            batch.append(event)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


@pytest.fixture
def scripted_engine(tokenizer) -> ScriptedEngine:
    return ScriptedEngine(
        tokenizer, tokenizer.encode("héllo wörld 😀 ok", add_special_tokens=False)
    )
