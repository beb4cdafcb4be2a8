"""Telemetry as a time series: raw samples, 5-minute rollups, retention and the query.

Ingest inserts a whole batch of samples with one statement (`store_samples`). The
maintenance job (`rollup`, run by the dispatch-lease holder) turns every finished
5-minute bucket into min/avg/max rows per metric, in Python so the SQL stays portable
between SQLite and PostgreSQL. Re-running a bucket deletes and rewrites its rows in one
transaction, so the job is idempotent. The query picks raw samples or rollups by `step`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from controller.db.models_health import TelemetryRollup, TelemetrySample
from protocol.messages import Telemetry

log = logging.getLogger(__name__)

BUCKET = timedelta(minutes=5)
# A bucket is rolled up only once it ended this long ago (telemetry in flight).
ROLLUP_GRACE = timedelta(seconds=60)
MAX_BUCKETS_PER_RUN = 12  # at most an hour of backlog per tick: bounded work
# Numeric metrics (booleans as 0/1) that are stored raw and rolled up.
METRICS: tuple[str, ...] = (
    "uptime_s", "cpu_temp_c", "disk_free_mb", "net_signal_dbm", "clock_offset_ms", "volume",
    "relay_on", "playing", "mains_v", "amp_current_a", "cabinet_temp_c", "led_reachable",
)  # fmt: skip
_COLUMNS = (*METRICS, "net_type")
MAX_POINTS = 5000


def sample_row(device_id: int, tele: Telemetry) -> dict[str, Any]:
    """One insert row from a station's message (NaN, as a failed meter read gives, is None)."""
    row: dict[str, Any] = {"device_id": device_id, "ts": tele.ts}
    for name in _COLUMNS:
        value = getattr(tele, name, None)
        if isinstance(value, float) and value != value:  # NaN
            value = None
        row[name] = value
    return row


def store_samples(session: Session, rows: list[dict[str, Any]]) -> None:
    """One set-based insert for a whole ingest batch."""
    if rows:
        session.execute(insert(TelemetrySample), rows)


def bucket_of(ts: datetime) -> datetime:
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % int(BUCKET.total_seconds()), UTC)


@dataclass(frozen=True)
class RollupResult:
    buckets: int
    rows: int


def rollup(session: Session, now: datetime | None = None) -> RollupResult:
    """Roll up every finished bucket after the last one rolled up (bounded per call)."""
    now = now or datetime.now(UTC)
    last = session.scalar(select(func.max(TelemetryRollup.bucket_start)))
    end_limit = bucket_of(now - ROLLUP_GRACE)  # buckets before this one are finished
    after = last + BUCKET if last is not None else None
    buckets = written = 0
    while buckets < MAX_BUCKETS_PER_RUN:
        # Jump to the next bucket that has samples: empty stretches cost one query.
        q = select(func.min(TelemetrySample.ts))
        nxt = session.scalar(q.where(TelemetrySample.ts >= after) if after is not None else q)
        if nxt is None or bucket_of(nxt) >= end_limit:
            break
        start = bucket_of(nxt)
        written += rollup_bucket(session, start)
        buckets += 1
        after = start + BUCKET
    return RollupResult(buckets, written)


def rollup_bucket(session: Session, start: datetime) -> int:
    """(Re)write one bucket's rollups: delete what is there, aggregate the raw samples, insert."""
    end = start + BUCKET
    session.execute(delete(TelemetryRollup).where(TelemetryRollup.bucket_start == start))
    cols = [getattr(TelemetrySample, m) for m in METRICS]
    q = select(TelemetrySample.device_id, *cols).where(TelemetrySample.ts >= start, TelemetrySample.ts < end)
    acc: dict[tuple[int, str], list[float]] = defaultdict(list)
    for row in session.execute(q):
        device_id = row[0]
        for name, value in zip(METRICS, row[1:], strict=True):
            if value is not None:
                acc[(device_id, name)].append(float(value))
    rows = [
        {"device_id": d, "metric": m, "bucket_start": start, "count": len(v),
         "min": min(v), "avg": sum(v) / len(v), "max": max(v)}
        for (d, m), v in acc.items()
    ]  # fmt: skip
    if rows:
        session.execute(insert(TelemetryRollup), rows)
    return len(rows)


def prune(session: Session, *, raw_days: float, rollup_days: float, now: datetime | None = None) -> None:
    """Drop raw samples and rollups past their retention (never raw samples not yet rolled up)."""
    now = now or datetime.now(UTC)
    raw_cut = now - timedelta(days=raw_days)
    rolled = session.scalar(select(func.max(TelemetryRollup.bucket_start)))
    if rolled is not None:
        raw_cut = min(raw_cut, rolled + BUCKET)
        session.execute(delete(TelemetrySample).where(TelemetrySample.ts < raw_cut))
    session.execute(delete(TelemetryRollup).where(
        TelemetryRollup.bucket_start < now - timedelta(days=rollup_days)))  # fmt: skip


# -- query ------------------------------------------------------------------------------------
STEPS = {"raw": 0, "5m": 300, "15m": 900, "1h": 3600, "6h": 6 * 3600, "1d": 86400}


@dataclass(frozen=True)
class Series:
    metric: str
    step: str
    points: list[dict[str, Any]]


def choose_step(step: str, start: datetime, end: datetime, raw_days: float, now: datetime) -> str:
    """'auto': raw for up to 6 hours still inside raw retention, then 5m, 1h, 1d (≤ ~300 points)."""
    if step != "auto":
        return step
    span = (end - start).total_seconds()
    if span <= 6 * 3600 and start >= now - timedelta(days=raw_days):
        return "raw"
    for name in ("5m", "1h", "1d"):
        if span / STEPS[name] <= 300:
            return name
    return "1d"


def query(session: Session, device_id: int, metric: str, start: datetime, end: datetime,
          step: str) -> Series:  # fmt: skip
    """Raw points ({ts, value}) or buckets ({ts, min, avg, max, count}) oldest first."""
    if step == "raw":
        col = getattr(TelemetrySample, metric)
        rows = session.execute(
            select(TelemetrySample.ts, col)
            .where(TelemetrySample.device_id == device_id, TelemetrySample.ts >= start,
                   TelemetrySample.ts < end, col.is_not(None))
            .order_by(TelemetrySample.ts).limit(MAX_POINTS)
        ).all()  # fmt: skip
        return Series(metric, step, [{"ts": ts.isoformat(), "value": _num(v)} for ts, v in rows])
    width = STEPS[step]
    rows = session.execute(
        select(TelemetryRollup)
        .where(TelemetryRollup.device_id == device_id, TelemetryRollup.metric == metric,
               TelemetryRollup.bucket_start >= bucket_of(start), TelemetryRollup.bucket_start < end)
        .order_by(TelemetryRollup.bucket_start)
    ).scalars()  # fmt: skip
    merged: dict[int, list[TelemetryRollup]] = defaultdict(list)
    for r in rows:  # coarser steps merge 5-minute buckets: min of mins, weighted mean, max of maxes
        epoch = int(r.bucket_start.timestamp())
        merged[epoch - epoch % width].append(r)
    points = []
    for epoch in sorted(merged)[:MAX_POINTS]:
        group = merged[epoch]
        n = sum(g.count for g in group)
        points.append({
            "ts": datetime.fromtimestamp(epoch, UTC).isoformat(), "count": n,
            "min": min(g.min for g in group), "max": max(g.max for g in group),
            "avg": round(sum(g.avg * g.count for g in group) / n, 4),
        })  # fmt: skip
    return Series(metric, step, points)


def _num(v: object) -> float | None:
    if v is None:
        return None
    return float(v)  # type: ignore[arg-type]
