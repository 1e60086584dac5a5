"""Validation alone: every refused input names its field."""

from __future__ import annotations

import pytest

from inference_engine.config import LimitsConfig
from inference_engine.errors import InvalidArgument
from inference_engine.session.events import GenerationParams
from inference_engine.session.validation import (
    MAX_SESSION_ID_CHARS,
    MIN_TEMPERATURE,
    check_params,
    check_session_args,
    check_session_id,
    check_token_ids,
)

LIMITS = LimitsConfig(max_append_tokens=8, max_generate_tokens=100, max_eos_ids=2)


@pytest.mark.parametrize(
    "ids,needle",
    [
        ([], "at least one"),
        ([1] * 9, "limit of 8"),
        ([-1], "outside"),
        ([50], "outside"),
        ([True], "bool"),
        (["3"], "str"),
    ],
)
def test_token_ids(ids, needle):
    with pytest.raises(InvalidArgument, match=needle) as raised:
        check_token_ids("token_ids", ids, 50, 8)
    assert raised.value.field == "token_ids"


def test_token_ids_ok():
    assert check_token_ids("token_ids", (0, 49), 50, 8) == [0, 49]


@pytest.mark.parametrize(
    "kw,field",
    [
        (dict(max_tokens=0), "max_tokens"),
        (dict(max_tokens=101), "max_tokens"),
        (dict(max_tokens=1.0), "max_tokens"),
        (dict(max_tokens=5, temperature=float("nan")), "temperature"),
        (dict(max_tokens=5, temperature=float("inf")), "temperature"),
        (dict(max_tokens=5, temperature=-1.0), "temperature"),
        (dict(max_tokens=5, top_p=0.0), "top_p"),
        (dict(max_tokens=5, top_p=1.01), "top_p"),
        (dict(max_tokens=5, top_p=float("nan")), "top_p"),
        (dict(max_tokens=5, top_k=-1), "top_k"),
        (dict(max_tokens=5, seed=-1), "seed"),
    ],
)
def test_params(kw, field):
    with pytest.raises(InvalidArgument) as raised:
        check_params(GenerationParams(**kw), LIMITS)
    assert raised.value.field == field


def test_session_args():
    assert check_session_args([3, 3, 4], "x", 50, LIMITS) == (3, 4)
    with pytest.raises(InvalidArgument, match="eos_token_ids"):
        check_session_args([1, 2, 3], "", 50, LIMITS)
    with pytest.raises(InvalidArgument, match="label"):
        check_session_args([], "y" * 300, 50, LIMITS)


def test_session_ids_are_bounded_before_any_lookup():
    assert check_session_id("sess_" + "a" * 22) == "sess_" + "a" * 22
    for bad in ("x" * (MAX_SESSION_ID_CHARS + 1), "x" * 1_000_000, 5, None):
        with pytest.raises(InvalidArgument) as raised:
            check_session_id(bad)
        assert raised.value.field == "session_id" and len(raised.value.message) < 80


@pytest.mark.parametrize("temperature", [1e-40, 5e-324, MIN_TEMPERATURE / 2])
def test_temperatures_sampling_cannot_divide_by_are_refused(temperature):
    with pytest.raises(InvalidArgument, match="use 0 for greedy") as raised:
        check_params(GenerationParams(max_tokens=5, temperature=temperature), LIMITS)
    assert raised.value.field == "temperature"


@pytest.mark.parametrize("temperature", [0, 0.0, MIN_TEMPERATURE, 0.7, 2, 1e300])
def test_computable_temperatures_pass(temperature):
    check_params(GenerationParams(max_tokens=5, temperature=temperature), LIMITS)


def test_labels_are_bounded_by_the_limits_config():
    limits = LimitsConfig(max_label_chars=4)
    assert check_session_args([], "abcd", 50, limits) == ()
    with pytest.raises(InvalidArgument, match="5 characters exceed 4"):
        check_session_args([], "abcde", 50, limits)
    with pytest.raises(InvalidArgument, match="not a string"):
        check_session_args([], b"bytes", 50, limits)


def test_oversized_token_lists_are_refused_by_their_length_alone():
    class Endless:
        def __len__(self):
            return 10**9

        def __iter__(self):
            raise AssertionError("the ids must not be copied")

    with pytest.raises(InvalidArgument, match="exceed the limit"):
        check_token_ids("token_ids", Endless(), 50, 8)
