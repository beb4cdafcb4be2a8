"""Issue 8: two controller replicas on one PostgreSQL and one broker.

Shared subscriptions split what stations say between the replicas; the dispatch lease
makes exactly one replica publish desired state. SIGKILL the lease holder mid-run:
every station still plays every bulletin exactly once and the play log has exactly one
row per station and bulletin.
"""

from __future__ import annotations

import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from communecast.mosquitto import free_port
from testkit.api import Api
from testkit.harness import ControllerProcess, System
from testkit.waiting import eventually
from tests.support.audio import tone

LEASE_S = "2"


def replica_env(name: str) -> dict[str, str]:
    return {
        "COMMUNECAST_MQTT_CLIENT_ID": f"communecast-controller-{name}",
        "COMMUNECAST_MQTT_SHARE_GROUP": "controllers",
        "COMMUNECAST_DISPATCH_LEASE_S": LEASE_S,
    }


def second_replica(system: System, name: str) -> ControllerProcess:
    """Same database, broker account, signing key and media store; its own port and client id."""
    port = free_port()
    env = {**system.controller.env, **replica_env(name), "COMMUNECAST_HTTP_PORT": str(port)}
    return ControllerProcess(env, system.root / f"controller-{name}.log", f"http://127.0.0.1:{port}")


def lease_holder(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT holder FROM dispatch_leases")).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
async def replicas(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share one PostgreSQL; SQLite is the single-process default")
    system = System(tmp_path / "system", database_url, controller_env=replica_env("a"))
    b = second_replica(system, "b")
    try:
        await system.start()
        b.start()
        await b.wait_healthy()
        yield system, b
    finally:
        b.stop()
        await system.stop()
        for log in (system.root / "controller.log", b.log_path):
            if log.exists():
                print(f"---- {log.name} (tail) ----\n" + log.read_text(errors="replace")[-3000:])


async def test_killing_the_lease_holder_loses_and_doubles_nothing(replicas, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    system, b = replicas
    a = system.controller
    stations = await system.add_stations(3)
    media = await Api.of(system).upload(tone(tmp_path / "t.wav", seconds=1.0))
    assert "controller-a" in lease_holder(system.database_url)

    async def schedule(base_url: str, start_at: datetime) -> tuple[int, datetime]:
        import httpx

        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            r = await http.post(
                "/api/v1/broadcasts", headers={"Authorization": f"Bearer {system.token}"},
                json={"title": "Thông báo phòng chống bão", "media_sha256": media["sha256"],
                      "targets": {"all": True}, "start_at": start_at.isoformat()})
        assert r.status_code == 201, r.text
        return int(r.json()["id"]), datetime.fromisoformat(r.json()["start_at"])  # as the controller set it

    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
    starts: dict[int, datetime] = {}
    for k in range(2):  # scheduled through the lease holder, dispatched by it
        at = t0 + timedelta(seconds=4 * k)
        bc, starts[bc] = await schedule(a.base_url, at)
    first = min(starts)
    await eventually(lambda: system.api_json("GET", f"/api/v1/broadcasts/{first}"),
                     lambda bc: bc["acked"] == 3, timeout=15, what="the first bulletin acked")
    # Mid-run: one more through the holder, then SIGKILL it at once (its dispatch may or may
    # not have gone out), and one through the survivor while the dead holder's lease is live.
    at = t0 + timedelta(seconds=10)
    bc, starts[bc] = await schedule(a.base_url, at)
    a.stop(signal.SIGKILL)
    at = t0 + timedelta(seconds=14)
    bc, starts[bc] = await schedule(b.base_url, at)

    by_start = {at.timestamp(): bc for bc, at in starts.items()}
    for st in stations:
        last = max(by_start)
        await st.sink.wait_for(lambda p, last=last: abs(p.requested_start - last) < 0.001, timeout=40)
    assert "controller-b" in lease_holder(system.database_url)
    # Its supervisor restarts the killed replica: messages the broker queued for its
    # persistent session are ingested then (docs/scaling.md).
    a.start()
    await a.wait_healthy()

    async def full_log() -> list[dict]:
        rows: list[dict] = []
        for bc in starts:
            rows += await system.api_json("GET", f"/api/v1/play-log?broadcast_id={bc}")
        return rows

    rows = await eventually(
        full_log, lambda rows: len(rows) == 12 and all(r["status"] == "played" for r in rows),
        timeout=30, what="12 played rows")
    assert Counter((r["device_id"], r["broadcast_id"]) for r in rows) == Counter(
        {(st.device_id, bc): 1 for st in stations for bc in starts})
    for st in stations:
        heard = Counter(next((bc for ts, bc in by_start.items() if abs(ts - p.requested_start) < 0.001), None)
                        for p in st.sink.playbacks)
        assert heard == Counter({bc: 1 for bc in starts}), f"{st.uid} heard {heard}"
        assert all(p.completed for p in st.sink.playbacks)
