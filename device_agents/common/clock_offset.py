"""How far this station's clock is from the controller's (an NTP-like exchange over HTTP).

Emergencies start on every station at one absolute instant; a station whose clock is off
starts off by the same amount. The agent measures its offset now and then against
`GET /api/v1/time` and reports it (`clock_offset_ms` in its reported state and telemetry),
so the controller can show each station's offset and correct the start skew it measures.
The estimate is the classic one: offset = local midpoint of the round trip - server time,
from the sample with the shortest round trip (least queueing).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from device_agents.common.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)

PERIOD_S = 600.0  # a Pi's clock drifts by well under a millisecond in ten minutes once NTP runs
FIRST_WITHIN_S = 20.0  # jittered, so a thousand stations starting together do not measure together
SAMPLES = 3
# A sample is only as good as half its round trip; a busy link gives no usable offset.
MAX_RTT_MS = 50.0


@dataclass(frozen=True)
class OffsetSample:
    offset_ms: float  # station clock minus controller clock
    rtt_ms: float


async def measure(
    http: httpx.AsyncClient, base_url: str, *, clock: Clock = REAL_CLOCK, samples: int = SAMPLES
) -> OffsetSample:
    """The best of `samples` exchanges (shortest round trip). Raises httpx.HTTPError."""
    url = base_url.rstrip("/") + "/api/v1/time"
    best: OffsetSample | None = None
    for _ in range(samples):
        t0 = clock.time()
        r = await http.get(url, timeout=5)
        t1 = clock.time()
        r.raise_for_status()
        server = float(r.json()["unix"])
        sample = OffsetSample(offset_ms=((t0 + t1) / 2 - server) * 1000, rtt_ms=(t1 - t0) * 1000)
        if best is None or sample.rtt_ms < best.rtt_ms:
            best = sample
    assert best is not None
    return best


class ClockOffsetProbe:
    """Keeps the latest offset; `run` measures soon after start, then every PERIOD_S."""

    def __init__(self, base_url: str, *, http: httpx.AsyncClient | None = None, clock: Clock = REAL_CLOCK,
                 period_s: float = PERIOD_S, first_within_s: float = FIRST_WITHIN_S) -> None:
        self._base_url = base_url
        self._http = http
        self._owns_http = http is None
        self._clock = clock
        self._period = period_s
        self.first_within_s = first_within_s  # a fleet of thousands spreads its first measurements
        self.latest: OffsetSample | None = None

    @property
    def offset_ms(self) -> float | None:
        return None if self.latest is None else round(self.latest.offset_ms, 2)

    async def measure_once(self) -> OffsetSample | None:
        if self._http is None:
            self._http = httpx.AsyncClient()
        try:
            sample = await measure(self._http, self._base_url, clock=self._clock)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.info("clock offset measurement failed: %s", exc)
            return None
        if sample.rtt_ms > MAX_RTT_MS:
            log.info("clock offset not measured: round trip %.0f ms is too long", sample.rtt_ms)
            return None
        self.latest = sample
        return sample

    async def run(self, on_measured: Callable[[OffsetSample], Awaitable[None]] | None = None) -> None:
        """Measure forever; `on_measured` (an async callable) is told about each new sample."""
        await asyncio.sleep(random.uniform(0.5, self.first_within_s))  # noqa: S311 (jitter, not a secret)
        while True:
            sample = await self.measure_once()
            if sample is not None and on_measured is not None:
                await on_measured(sample)
            await asyncio.sleep(self._period)

    async def close(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None
