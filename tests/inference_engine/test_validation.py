"""Validation alone: every refused input names its field."""

from __future__ import annotations

import pytest

from inference_engine.config import LimitsConfig
from inference_engine.errors import InvalidArgument
from inference_engine.session.events import GenerationParams
from inference_engine.session.validation import check_params, check_session_args, check_token_ids

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
