"""SessionStore alone: ids, the full policy, LRU order, TTL sweep, endings, shutdown."""

from __future__ import annotations

import pytest

from inference_engine.config import StoreConfig, WhenFull
from inference_engine.errors import InvalidArgument, ResourceExhausted, SessionNotFound, Unavailable
from inference_engine.session.store import SessionStore, new_session_id
from inference_engine.tenancy import Identity


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


# --- owners, quotas, bytes ---------------------------------------------------------------

ALICE, BOB, CAROL = (Identity.for_token(name) for name in ("alice", "bob", "carol"))


def test_evict_idle_takes_the_requesters_own_idle_session_first():
    s, ended = store(max_sessions=3, when_full=WhenFull.EVICT_IDLE)
    bob_old = s.create("b", (), None, owner=BOB)
    alice_first = s.create("a1", (), None, owner=ALICE)
    s.create("a2", (), None, owner=ALICE)
    s.create("a3", (), None, owner=ALICE)  # alice's burst: her own oldest goes, not bob's
    assert ended == [(alice_first.session_id, "evicted:lru")]
    assert s.get(bob_old.session_id).owner == BOB


def test_evict_idle_takes_only_from_identities_over_their_share():
    s, ended = store(max_sessions=4, when_full=WhenFull.EVICT_IDLE)
    bob = s.create("b", (), None, owner=BOB)
    hog = [s.create(f"a{i}", (), None, owner=ALICE) for i in range(3)]
    s.create("c", (), None, owner=CAROL)  # carol holds none: alice (3 > 4/3) gives one up
    assert ended == [(hog[0].session_id, "evicted:over_share")]
    with pytest.raises(SessionNotFound, match=r"evicted over_share .*more than its share"):
        s.get(hog[0].session_id)
    assert s.get(bob.session_id)  # bob is within his share: never evicted for carol


def test_no_session_of_an_identity_within_its_share_is_evicted():
    s, ended = store(max_sessions=2, when_full=WhenFull.EVICT_IDLE)
    s.create("a", (), None, owner=ALICE)
    s.create("b", (), None, owner=BOB)
    with pytest.raises(ResourceExhausted, match="no idle session") as refused:
        s.create("c", (), None, owner=CAROL)
    assert refused.value.reason == "store_full" and refused.value.retry_after_s > 0
    assert ended == []


def test_a_per_identity_quota_refuses_the_owner_only():
    s, _ = store(max_sessions=8)
    s.quota = 2
    s.create("a", (), None, owner=ALICE)
    s.create("a", (), None, owner=ALICE)
    with pytest.raises(ResourceExhausted, match="quota") as refused:
        s.create("a", (), None, owner=ALICE)
    assert refused.value.reason == "quota"
    assert s.create("b", (), None, owner=BOB).owner == BOB


def test_a_quota_under_evict_idle_recycles_the_owners_own_oldest():
    s, ended = store(max_sessions=8, when_full=WhenFull.EVICT_IDLE)
    s.quota = 1
    bob = s.create("b", (), None, owner=BOB)
    first = s.create("a", (), None, owner=ALICE)
    s.create("a", (), None, owner=ALICE)
    assert ended == [(first.session_id, "evicted:lru")]
    assert s.get(bob.session_id)


def test_pinned_sessions_are_never_evicted():
    s, _ = store(max_sessions=1, when_full=WhenFull.EVICT_IDLE, session_ttl_s=0.0)
    pinned = s.create("http", (), None, pinned=True)
    with pytest.raises(ResourceExhausted):
        s.create("b", (), None)
    assert s.get(pinned.session_id)


def test_the_store_admits_by_bytes():
    config = StoreConfig(max_sessions=64, max_session_bytes=1000)
    s = SessionStore(config, session_bytes=300)
    assert s.capacity == 3
    for _ in range(3):
        s.create("x", (), None)
    assert s.admitted_bytes == 900
    with pytest.raises(ResourceExhausted, match="900 of 1000 bytes"):
        s.create("x", (), None)


def test_reject_with_known_identities_caps_each_at_its_share():
    config = StoreConfig(max_sessions=5)
    s = SessionStore(config, identities=2)
    assert s.quota == 3
    for _ in range(3):
        s.create("a", (), None, owner=ALICE)
    with pytest.raises(ResourceExhausted, match="its share"):
        s.create("a", (), None, owner=ALICE)  # alice's burst stops at her share
    assert s.create("b", (), None, owner=BOB).owner == BOB  # and bob still gets his
    evicting = SessionStore(
        StoreConfig(max_sessions=5, when_full=WhenFull.EVICT_IDLE), identities=2
    )
    assert evicting.quota == 0  # evict-idle shares by evicting above the share instead
