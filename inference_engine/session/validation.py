"""Every check on user input, in one place, before any state changes.

Messages name the field and the bound, and quote client strings only as a short prefix;
nothing here mutates state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from inference_engine.config import LimitsConfig
from inference_engine.errors import InvalidArgument, ResourceExhausted
from inference_engine.session.events import GenerationParams

# Ids are server-issued ("sess_" + 22 characters); anything much longer is not one of ours.
MAX_SESSION_ID_CHARS = 64
# Sampling divides logits by the temperature: below this, float32 scores overflow to inf
# and the probabilities turn NaN. Zero (greedy) stays allowed.
MIN_TEMPERATURE = 1e-5


def check_session_id(session_id: object) -> str:
    """The id, when it is a string short enough to be one the server issued.

    Raises:
        InvalidArgument: not a string, or longer than `MAX_SESSION_ID_CHARS`.
    """
    if not isinstance(session_id, str):
        raise InvalidArgument("session_id", f"is {type(session_id).__name__}, not a string")
    if len(session_id) > MAX_SESSION_ID_CHARS:
        raise InvalidArgument(
            "session_id", f"{len(session_id)} characters exceed {MAX_SESSION_ID_CHARS}"
        )
    return session_id


def check_token_ids(
    field: str, token_ids: Sequence[int], vocab_size: int, max_len: int
) -> list[int]:
    """Return the ids as a list of ints when all lie in [0, vocab_size) and the count is allowed.

    Raises:
        InvalidArgument: empty, too many, or an id that is not an int in range.
    """
    if len(token_ids) > max_len:  # before copying: the count alone decides
        raise InvalidArgument(field, f"{len(token_ids)} token ids exceed the limit of {max_len}")
    ids = list(token_ids)
    if not ids:
        raise InvalidArgument(field, "must hold at least one token id")
    for index, token in enumerate(ids):
        if isinstance(token, bool) or not isinstance(token, int):
            raise InvalidArgument(field, f"[{index}] is {type(token).__name__}, not an int")
        if not 0 <= token < vocab_size:
            raise InvalidArgument(field, f"[{index}] = {token} is outside [0, {vocab_size})")
    return ids


def check_history_room(history_tokens: int, adding: int, limits: LimitsConfig) -> None:
    """Whether a session's history may grow by `adding` tokens (an append, or a generate's
    `max_tokens`, whose tokens join the history).

    Raises:
        ResourceExhausted: the history would pass `max_history_tokens` (the message names
            the bound; close the session and start another).
    """
    bound = limits.max_history_tokens
    if history_tokens + adding > bound:
        raise ResourceExhausted(
            f"history of {history_tokens} tokens + {adding} would exceed "
            f"max_history_tokens={bound}; start a new session"
        )


def check_session_args(
    eos_token_ids: Sequence[int], label: object, vocab_size: int, limits: LimitsConfig
) -> tuple[int, ...]:
    """The EOS ids, deduplicated, once the label and the ids are within bounds.

    Raises:
        InvalidArgument: a label that is not a string or too long; bad EOS ids.
    """
    if not isinstance(label, str):
        raise InvalidArgument("label", f"is {type(label).__name__}, not a string")
    if len(label) > limits.max_label_chars:
        raise InvalidArgument("label", f"{len(label)} characters exceed {limits.max_label_chars}")
    if not eos_token_ids:
        return ()
    unique = list(dict.fromkeys(eos_token_ids))
    return tuple(check_token_ids("eos_token_ids", unique, vocab_size, limits.max_eos_ids))


def check_params(params: GenerationParams, limits: LimitsConfig) -> None:
    """Every generation parameter, so that sampling can only see values it can compute.

    Raises:
        InvalidArgument: the first parameter out of bounds.
    """
    max_tokens = params.max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise InvalidArgument("max_tokens", "must be an integer")
    if not 1 <= max_tokens <= limits.max_generate_tokens:
        raise InvalidArgument(
            "max_tokens", f"{max_tokens} is outside [1, {limits.max_generate_tokens}]"
        )
    _check_temperature(params.temperature)
    top_p = params.top_p
    if not (_is_number(top_p) and math.isfinite(top_p) and 0.0 < top_p <= 1.0):
        raise InvalidArgument("top_p", f"{top_p!r} is outside (0, 1]")
    if isinstance(params.top_k, bool) or not isinstance(params.top_k, int) or params.top_k < 0:
        raise InvalidArgument("top_k", f"{params.top_k!r} must be an integer >= 0")
    seed = params.seed
    if seed is not None and not (_is_int(seed) and 0 <= seed < 2**63):
        raise InvalidArgument("seed", f"{seed!r} is outside [0, 2**63)")


def _check_temperature(temperature: object) -> None:
    if not (_is_number(temperature) and math.isfinite(temperature)):  # type: ignore[arg-type]
        raise InvalidArgument("temperature", f"{temperature!r} is not a finite number")
    if temperature < 0:  # type: ignore[operator]
        raise InvalidArgument("temperature", f"{temperature} is negative")
    if 0 < temperature < MIN_TEMPERATURE:  # type: ignore[operator]
        raise InvalidArgument(
            "temperature", f"{temperature} is below {MIN_TEMPERATURE:g}; use 0 for greedy"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
