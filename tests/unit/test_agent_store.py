"""The agent's local store: once-only playing, replay memory, outbox survives a restart."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device_agents.common.store import AgentStore, QueuedEvent
from device_agents.hardware.amplifier import NoAmplifier
from device_agents.host.events import EventLog
from device_agents.speaker.horn import Horn
from device_agents.speaker.on_air import OnAir
from device_agents.speaker.relay import AmplifierRelay
from firmware_sim.audio_sink import SimAudioSink
from protocol.messages import EventKind, MediaRef, ScheduleItem


def item(item_id: str, minutes: int = 5) -> ScheduleItem:
    return ScheduleItem(
        item_id=item_id, start_at=datetime.now(UTC) + timedelta(minutes=minutes),
        media=[MediaRef(sha256="a" * 64, size=10, duration_s=1.0)],
    )  # fmt: skip


def test_an_item_moves_to_playing_once(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "a.sqlite3")
    b1, b2 = item("b1"), item("b2")
    assert [i.item_id for i in store.upsert_items([b1, b2])] == ["b1", "b2"]
    assert store.transition("b1", "playing", expect="pending")
    assert not store.transition("b1", "playing", expect="pending")  # the second attempt loses
    store.transition("b1", "done", "played", event=QueuedEvent("t", b"e1", "event-e1"))
    # Redelivery of the same desired state re-arms nothing: b1 is done, b2 pending and unchanged
    # (its runner keeps going; re-arming it just before its start made it late).
    assert store.upsert_items([b1, b2]) == []
    assert store.item_state("b1") == "done" and store.item_state("b2") == "pending"
    # A pending item that changed (moved, new audio) is re-armed; a done one never is.
    moved = b2.model_copy(update={"start_at": b2.start_at + timedelta(minutes=5)})
    assert [i.item_id for i in store.upsert_items([b1, moved])] == ["b2"]


def test_dropping_pending_items_keeps_history(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "a.sqlite3")
    store.upsert_items([item("b1"), item("b2"), item("b3")])
    store.transition("b1", "done", "played")
    assert store.drop_pending(keep={"b3"}) == ["b2"]
    assert store.item_state("b1") == "done" and store.item_state("b2") is None


def test_replay_memory_and_outbox_survive_restart(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    store = AgentStore(path)
    assert store.remember("env-1", time.time() + 60)
    assert not store.remember("env-1", time.time() + 60)
    store.enqueue("cc/v1/dev/x/evt", b"one")
    # An unknown item: nothing queued.
    store.transition("missing", "done", event=QueuedEvent("t", b"lost?", "event-lost"))
    store.close()
    again = AgentStore(path)
    assert not again.remember("env-1", time.time() + 60)
    entries = again.outbox_head()
    assert [e.payload for e in entries] == [b"one"]
    again.outbox_done(entries[0].seq)
    assert again.outbox_size() == 0


def test_a_newer_desired_state_never_drops_a_commanded_item(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "a.sqlite3")
    store.upsert_items([item("b1")])
    store.upsert_items([item("emergency-7")], source="command")
    assert store.drop_pending(keep=set()) == ["b1"]
    assert store.item_state("emergency-7") == "pending"



def test_an_item_is_finished_once_a_late_missed_never_overwrites_played(tmp_path: Path) -> None:
    """OnAir.finish moved any item to done. It now moves it from pending (never on air) or from
    playing (on air) only, so the first outcome stays and no second event is queued."""
    store = AgentStore(tmp_path / "a.sqlite3")
    events = EventLog("spk-1", store, wake=lambda: None)

    async def cancel(_item_id: str, _why: str) -> None:
        return None

    on_air = OnAir(relay=AmplifierRelay(NoAmplifier(), hold_s=0.0, on_fault=lambda *_: None), horn=Horn(),
                   audio=SimAudioSink(), store=store, events=events, cancel=cancel)
    it = item("s1@20261207T230000Z")
    store.upsert_items([it])
    assert store.transition(it.item_id, "playing", expect="pending")
    assert on_air.finish(it, EventKind.PLAY_FINISHED, "played", expect="playing")
    assert not on_air.finish(it, EventKind.MISSED, "missed", reason="start passed before it could play")
    assert not on_air.finish(it, EventKind.INTERRUPTED, "interrupted", expect="playing")  # a resume
    kinds = [json.loads(e.payload)["kind"] for e in store.outbox_head()]
    assert kinds == ["play_finished"]
    # An item that never went on air is finished from pending, once.
    other = item("b7")
    store.upsert_items([other])
    assert on_air.finish(other, EventKind.MISSED, "missed", reason="start passed before it could play")
    assert not on_air.finish(other, EventKind.MISSED, "missed", reason="again")
    assert len(store.outbox_head()) == 2


def test_a_receipt_forgets_only_the_events_it_names(tmp_path: Path) -> None:
    store = AgentStore(tmp_path / "a.sqlite3")
    for name in ("e1", "e2", "e3"):
        store.enqueue("cc/v1/dev/spk-1/evt", name.encode(), f"event-{name}")
    first, second, third = (e.seq for e in store.outbox_head())
    assert sorted(store.outbox_receipted(["event-e1", "event-e3", "event-never-sent"])) == [first, third]
    assert [(e.seq, e.event_id) for e in store.outbox_head()] == [(second, "event-e2")]
    assert store.outbox_receipted(["event-e1"]) == []  # a second receipt for the same event changes nothing
    assert [e.payload for e in store.outbox_entries([first, second, third])] == [b"e2"]


def test_an_older_agents_outbox_is_kept_and_gains_event_ids(tmp_path: Path) -> None:
    """A store written before receipts: its waiting events survive the upgrade (forgotten at
    their PUBACK, as they were), and new ones carry their id."""
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
                "payload BLOB NOT NULL, created_at REAL NOT NULL)")
    old.execute("INSERT INTO outbox(topic, payload, created_at) VALUES ('t', x'6f6c64', 0)")
    old.commit()
    old.close()
    store = AgentStore(path)
    store.enqueue("t", b"new", "event-new")
    assert [(e.payload, e.event_id) for e in store.outbox_head()] == [(b"old", None), (b"new", "event-new")]
