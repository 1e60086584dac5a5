"""SessionStore alone: ids, the full policy, LRU order, TTL sweep, endings, shutdown."""

from __future__ import annotations

import pytest

from inference_engine.config import StoreConfig, WhenFull
from inference_engine.errors import InvalidArgument, ResourceExhausted, SessionNotFound, Unavailable
from inference_engine.session.store import SessionStore, new_session_id


def store(**kw) -> tuple[SessionStore, list[tuple[str, str]]]:
    ended: list[tuple[str, str]] = []
    s = SessionStore(
        StoreConfig(**kw), on_end=lambda sess, why: ended.append((sess.session_id, why))
    )
    return s, ended


def test_ids_are_unique_and_long():
    ids = {new_session_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) >= 5 + 22 for i in ids)


def test_a_full_store_rejects_by_default_and_keeps_every_session():
    s, ended = store(max_sessions=2)
    a = s.create("a", (), None)
    b = s.create("b", (), None)
    with pytest.raises(ResourceExhausted, match="--when-full reject"):
        s.create("c", (), None)
    assert ended == []
    assert {x.session_id for x in s.sessions()} == {a.session_id, b.session_id}


def test_a_full_store_drops_expired_sessions_before_it_rejects():
    s, ended = store(max_sessions=1, session_ttl_s=0.0)
    a = s.create("a", (), None)
    b = s.create("b", (), None)
    assert ended == [(a.session_id, "evicted:ttl")]
    assert [x.session_id for x in s.sessions()] == [b.session_id]


def test_evict_idle_evicts_least_recently_used_idle_session():
    s, ended = store(max_sessions=2, when_full=WhenFull.EVICT_IDLE)
    a = s.create("a", (), None)
    b = s.create("b", (), None)
    s.get(a.session_id)
    c = s.create("c", (), None)
    assert ended == [(b.session_id, "evicted:lru")]
    assert {x.session_id for x in s.sessions()} == {a.session_id, c.session_id}
    with pytest.raises(SessionNotFound, match="evicted lru"):
        s.get(b.session_id)


def test_busy_sessions_are_never_evicted():
    s, _ = store(max_sessions=1, when_full=WhenFull.EVICT_IDLE)
    a = s.create("a", (), None)
    a.busy = True
    with pytest.raises(ResourceExhausted):
        s.create("b", (), None)
    assert s.get(a.session_id) is a


def test_ttl_sweep_and_expiry_on_access():
    s, ended = store(session_ttl_s=0.0)
    a = s.create("a", (), None)
    b = s.create("b", (), None)
    b.busy = True
    assert s.sweep() == 1
    assert ended == [(a.session_id, "evicted:ttl")]
    assert s.get(b.session_id) is b  # busy: kept
    b.busy = False
    with pytest.raises(SessionNotFound, match="ttl"):
        s.get(b.session_id)


def test_close_is_final():
    s, ended = store()
    a = s.create("a", (), None)
    s.close(a.session_id)
    with pytest.raises(SessionNotFound, match="closed"):
        s.close(a.session_id)
    assert ended == [(a.session_id, "closed")]


def test_long_ids_are_invalid_and_unknown_ids_are_quoted_short():
    s, _ = store()
    with pytest.raises(InvalidArgument, match="session_id"):
        s.get("x" * 10_000)
    with pytest.raises(SessionNotFound) as raised:
        s.get("sess_" + "z" * 50)
    assert len(raised.value.message) < 100


def test_nothing_is_created_once_stopping_but_sessions_stay_readable():
    s, _ = store()
    a = s.create("a", (), None)
    s.stop_accepting()
    with pytest.raises(Unavailable):
        s.create("b", (), None)
    with pytest.raises(Unavailable):
        s.check_accepting()
    assert s.get(a.session_id) is a
