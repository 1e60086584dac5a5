"""Every check on user input, in one place, before any model work.

Messages name the field and the bound; nothing here mutates state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from inference_engine.config import LimitsConfig
from inference_engine.errors import InvalidArgument
from inference_engine.session.events import GenerationParams

MAX_LABEL_CHARS = 256


def check_token_ids(
    field: str, token_ids: Sequence[int], vocab_size: int, max_len: int
) -> list[int]:
    """Return the ids as a list of ints when all lie in [0, vocab_size) and the count is allowed."""
    ids = list(token_ids)
    if not ids:
        raise InvalidArgument(field, "must hold at least one token id")
    if len(ids) > max_len:
        raise InvalidArgument(field, f"{len(ids)} token ids exceed the limit of {max_len}")
    for index, token in enumerate(ids):
        if isinstance(token, bool) or not isinstance(token, int):
            raise InvalidArgument(field, f"[{index}] is {type(token).__name__}, not an int")
        if not 0 <= token < vocab_size:
            raise InvalidArgument(field, f"[{index}] = {token} is outside [0, {vocab_size})")
    return ids


def check_session_args(
    eos_token_ids: Sequence[int], label: str, vocab_size: int, limits: LimitsConfig
) -> tuple[int, ...]:
    if len(label) > MAX_LABEL_CHARS:
        raise InvalidArgument("label", f"{len(label)} characters exceed {MAX_LABEL_CHARS}")
    if not eos_token_ids:
        return ()
    unique = list(dict.fromkeys(eos_token_ids))
    return tuple(check_token_ids("eos_token_ids", unique, vocab_size, limits.max_eos_ids))


def check_params(params: GenerationParams, limits: LimitsConfig) -> None:
    max_tokens = params.max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise InvalidArgument("max_tokens", "must be an integer")
    if not 1 <= max_tokens <= limits.max_generate_tokens:
        raise InvalidArgument(
            "max_tokens", f"{max_tokens} is outside [1, {limits.max_generate_tokens}]"
        )
    if not (isinstance(params.temperature, int | float) and math.isfinite(params.temperature)):
        raise InvalidArgument("temperature", f"{params.temperature!r} is not a finite number")
    if params.temperature < 0:
        raise InvalidArgument("temperature", f"{params.temperature} is negative")
    if not (math.isfinite(params.top_p) and 0.0 < params.top_p <= 1.0):
        raise InvalidArgument("top_p", f"{params.top_p!r} is outside (0, 1]")
    if isinstance(params.top_k, bool) or not isinstance(params.top_k, int) or params.top_k < 0:
        raise InvalidArgument("top_k", f"{params.top_k!r} must be an integer >= 0")
    if params.seed is not None and not (isinstance(params.seed, int) and 0 <= params.seed < 2**63):
        raise InvalidArgument("seed", f"{params.seed!r} is outside [0, 2**63)")
