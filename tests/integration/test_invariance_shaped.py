"""Batch and chunking invariance on the real shape: kakeya/qwen3-0.6b-shaped in bfloat16.

The tiny model's products are too small to show what the 0.6B shape shows on this CPU: a
bfloat16 product over K >= 2048 rounds one row alone another way than two or more, so a
session's logits solo and amid others differed from the first step (tokens from the 11th
of 48). Each test is short (a few tokens) and compares logits to the bit, which is what
the tokens follow.
"""

from __future__ import annotations

import copy

import pytest
import torch
from test_batching import Reader
from test_core_sessions import generate, history, wait_until

from inference_engine.config import CacheConfig, ModelConfig, RuntimeConfig, SchedulerConfig
from inference_engine.kv_cache import CacheShape, SinkWindowCache
from inference_engine.session import generator as gen
from inference_engine.session.events import GenerationParams
from inference_engine.session.step_shape import choose_step_shape

pytestmark = pytest.mark.slow

SHAPED = ModelConfig(model_id="kakeya/qwen3-0.6b-shaped", device="cpu", dtype="bfloat16")
SINK, WINDOW, CHUNK = 4, 28, 16  # S + W = 32: the histories below cross it


@pytest.fixture(scope="module")
def shaped():
    from inference_engine.errors import ModelNotCached
    from inference_engine.models.loader import load_model

    try:
        return load_model(SHAPED)
    except ModelNotCached as missing:
        pytest.skip(f"{SHAPED.model_id} is not cached: {missing}")


def engine_over(loaded, max_concurrent: int):
    from inference_engine.engine import Engine

    config = RuntimeConfig(
        model=SHAPED,
        cache=CacheConfig(sink_tokens=SINK, window_tokens=WINDOW, prefill_chunk_tokens=CHUNK),
        scheduler=SchedulerConfig(max_concurrent=max_concurrent, max_queue=2 * max_concurrent),
    )
    return Engine.from_loaded(loaded, config)


def test_the_probe_finds_what_the_real_step_needs_and_keeps_both_invariances(shaped):
    choice = choose_step_shape(shaped.model, 16)
    assert choice.batch_invariant and choice.chunk_invariant, choice.describe()


def test_a_step_gives_a_session_the_same_bits_alone_and_amid_3_7_15_others(shaped):
    """The decode step itself, with the shape the engine runs: prompts of different lengths
    (the longest past S + W), the session in another row each time."""
    model, vocab = shaped.model, shaped.vocab_size
    shape = choose_step_shape(model, 16).shape
    bases = []
    with torch.inference_mode():
        for i in range(16):
            cache = SinkWindowCache(CacheShape.of(model), SINK, WINDOW, CHUNK)
            gen.prefill(model, cache, history(300 + i, 3 + 3 * i, vocab), CHUNK, shape.min_rows)
            bases.append(cache)
        tokens = [(7 * i + 11) % vocab for i in range(16)]

        def step(which: list[int]) -> torch.Tensor:
            caches = [copy.deepcopy(bases[i]) for i in which]
            lanes = max(len(which), shape.min_rows)
            step_tokens = [tokens[i] for i in which]
            return gen.decode_step(model, caches, step_tokens, lanes, shape.split_rows)[0]

        alone = step([0])[0]
        for others in (3, 7, 15):
            which = [*range(others, 0, -1)]
            which.insert(others // 2, 0)  # the session sits amid the others
            assert torch.equal(step(which)[others // 2], alone), f"amid {others}"


def test_tokens_alone_amid_fifteen_joining_late_and_beside_cancelled_neighbours(shaped):
    """Served: one session's greedy tokens and final logits alone, amid 15 others (some
    stopping after two tokens), and joining a running batch late are the same bits."""
    engine = engine_over(shaped, 16)
    try:
        prompts = [history(400 + i, 5 + 2 * i, engine.vocab_size) for i in range(16)]

        alone, alone_logits = run(engine, prompts[0], 6)
        cancelling = {i: 2 for i in range(3, 16, 4)}  # neighbours that stop after two tokens
        crowd = [spawn(engine, p, 6, cancelling.get(i)) for i, p in enumerate(prompts)]
        for _, reader in crowd:
            reader.join(300)
        assert crowd[0][1].tokens == alone
        assert torch.equal(logits_of(engine, crowd[0][0]), alone_logits)

        others = [spawn(engine, p, 12)[1] for p in prompts[1:4]]
        assert wait_until(lambda: min(len(r.tokens) for r in others) >= 2, 300)
        late, late_logits = run(engine, prompts[0], 6)  # joins a running batch
        for reader in others:
            reader.join(300)
        assert late == alone
        assert torch.equal(late_logits, alone_logits)
    finally:
        engine.shutdown()


def spawn(engine, prompt: list[int], max_tokens: int, stop_after: int | None = None):
    sid = engine.create_session().session_id
    engine.append(sid, prompt)
    reader = Reader(engine.generate(sid, GenerationParams(max_tokens=max_tokens)), stop_after)
    reader.start()
    return sid, reader


def run(engine, prompt: list[int], max_tokens: int) -> tuple[list[int], torch.Tensor]:
    sid, reader = spawn(engine, prompt, max_tokens)
    reader.join(300)
    return reader.tokens, logits_of(engine, sid)


def logits_of(engine, sid: str) -> torch.Tensor:
    return engine.coordinator.store.get(sid).state.last_logits


def test_a_152_token_history_grown_in_4_turns_equals_it_appended_at_once(shaped):
    """INV-3 in bfloat16 on the real shape, across S + W: the same greedy tokens and the
    same logits bits whether the history came in turns (with generations between) or at
    once, in one append or in chunkings that cross the bound."""
    engine = engine_over(shaped, 4)
    try:
        turns = [history(500 + i, 33, engine.vocab_size) for i in range(4)]
        grown = engine.create_session().session_id
        for turn in turns:
            engine.append(grown, turn)
            generate(engine, grown, max_tokens=5)
        whole_history = list(engine.coordinator.store.get(grown).history)
        assert len(whole_history) == 152
        expected = generate(engine, grown, max_tokens=4)[0]
        whole = engine.create_session().session_id
        engine.append(whole, whole_history)
        assert generate(engine, whole, max_tokens=4)[0] == expected
        assert torch.equal(logits_of(engine, whole), logits_of(engine, grown))
    finally:
        engine.shutdown()


def test_prefill_pieces_that_cross_the_bound_give_one_shot_bits(shaped):
    """Forwards of 1, 2, odd and whole chunks, crossing S + W: the last logits to the bit."""
    model, vocab = shaped.model, shaped.vocab_size
    shape = choose_step_shape(model, 4).shape
    tokens = history(600, 60, vocab)
    results = []
    with torch.inference_mode():
        for sizes in ([60], [1, 2, 13, 1, 16, 27], [3] * 20):
            cache = SinkWindowCache(CacheShape.of(model), SINK, WINDOW, CHUNK)
            offset = 0
            for size in sizes:
                logits = gen.prefill(
                    model, cache, tokens[offset : offset + size], CHUNK, shape.min_rows
                )
                offset += size
            results.append(logits)
    assert torch.equal(results[0], results[1])
    assert torch.equal(results[0], results[2])
