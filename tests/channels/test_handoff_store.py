from pathlib import Path

from channels.handoff_store import HandoffStore


def test_open_is_once_until_closed_and_reopens_after(tmp_path: Path):
    store = HandoffStore(tmp_path / "h.db", clock=lambda: 100.0)
    assert store.open_sync("c1", "telegram", "asked_for_person", 5.0)
    assert not store.open_sync("c1", "telegram", "negative_turns", 6.0)
    handoff = store.get_sync("c1")
    assert handoff is not None and handoff.is_open
    assert (handoff.channel, handoff.reason, handoff.forwarded_until) == (
        "telegram",
        "asked_for_person",
        5.0,
    )
    assert [h.sender_id for h in store.list_open_sync()] == ["c1"]
    assert store.close_sync("c1") and not store.close_sync("c1")
    assert store.list_open_sync() == []
    assert store.open_sync("c1", "slack", "fallback_turns", 9.0)
    assert store.get_sync("c1").reason == "fallback_turns"  # type: ignore[union-attr]


def test_threads_and_forwarding_claims_survive_a_new_store(tmp_path: Path):
    path = tmp_path / "h.db"
    first = HandoffStore(path)
    first.open_sync("c1", "webchat", "asked_for_person", 1.0)
    first.set_thread_sync("c1", "1700000000.000100")
    second = HandoffStore(path)  # another worker, or after a restart
    assert second.by_thread_sync("1700000000.000100").sender_id == "c1"  # type: ignore[union-attr]
    # Two workers race to forward the same new messages: only one wins.
    assert first.claim_forward_sync("c1", 1.0, 2.0)
    assert not second.claim_forward_sync("c1", 1.0, 2.0)
    second.close_sync("c1")
    assert first.by_thread_sync("1700000000.000100") is None
    assert not first.claim_forward_sync("c1", 2.0, 3.0)
