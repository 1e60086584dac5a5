"""Identities, the token file's formats, and the tokens-per-minute budget."""

from __future__ import annotations

import asyncio
import time

import pytest

from inference_engine.tenancy import (
    LOCAL,
    Identity,
    TokenBudget,
    calling_as,
    current_identity,
    parse_token_lines,
    peer_host,
    retry_after_header,
)


def test_peer_identities_keep_the_host_and_drop_the_port() -> None:
    assert peer_host("ipv4:127.0.0.1:50123") == "127.0.0.1"
    assert peer_host("ipv6:[::1]:50123") == "::1"
    assert peer_host("10.0.0.2:80") == "10.0.0.2"
    assert peer_host("::1") == "::1"
    assert Identity.for_peer("ipv4:127.0.0.1:1") == Identity.for_peer("ipv4:127.0.0.1:2")
    assert Identity.for_token("alice").name == "token:alice"


def test_named_tokens_one_per_line() -> None:
    text = "# operators\nalice:tok-a\n\nbob: tok-b \n"
    assert parse_token_lines(text) == {"tok-a": "alice", "tok-b": "bob"}


def test_the_old_single_token_file_is_one_identity_named_default() -> None:
    assert parse_token_lines("  s3cret-token\n") == {"s3cret-token": "default"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("one\ntwo\n", "name:token"),
        ("alice:a\nnot a pair\n", "entry 2"),
        ("alice:a\nalice:b\n", "repeated"),
        ("alice:a\nbob:a\n", "repeated"),
    ],
)
def test_malformed_token_files_are_refused(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_token_lines(text)


def test_the_identity_follows_the_call_into_threads() -> None:
    alice = Identity.for_token("alice")

    async def call() -> Identity:
        with calling_as(alice):
            return await asyncio.to_thread(current_identity)

    assert asyncio.run(call()) == alice
    assert current_identity() == LOCAL


def test_the_budget_refuses_past_the_minute_and_says_when_it_frees() -> None:
    budget = TokenBudget(per_minute=100, window_s=0.3)
    alice, bob = Identity.for_token("alice"), Identity.for_token("bob")
    budget.charge(alice, 60)
    assert budget.retry_after_s(alice) is None
    budget.charge(alice, 50)
    wait = budget.retry_after_s(alice)
    assert wait is not None and 0 < wait <= 0.3
    assert budget.retry_after_s(bob) is None  # one identity's spending is its own
    time.sleep(wait + 0.05)
    assert budget.retry_after_s(alice) is None
    assert budget.used(alice) == 0


def test_no_budget_means_no_limit() -> None:
    budget = TokenBudget(per_minute=0)
    budget.charge(LOCAL, 10**9)
    assert budget.retry_after_s(LOCAL) is None


def test_retry_after_header_is_whole_seconds_at_least_one() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(2.2) == "3"
