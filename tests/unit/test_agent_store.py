"""The agent's local store: once-only playing, replay memory, outbox survives a restart."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device_agents.common.store import AgentStore
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
    assert [i.item_id for i in store.upsert_items([item("b1"), item("b2")])] == ["b1", "b2"]
    assert store.transition("b1", "playing", expect="pending")
    assert not store.transition("b1", "playing", expect="pending")  # the second attempt loses
    store.transition("b1", "done", "played", event=("t", b"e1"))
    # Redelivery of the same desired state re-arms only what is still pending.
    assert [i.item_id for i in store.upsert_items([item("b1"), item("b2")])] == ["b2"]
    assert store.item_state("b1") == "done"


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
    store.transition("missing", "done", event=("t", b"lost?"))  # unknown item: nothing queued
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
