"""Two lanes for ffmpeg work, so an emergency never waits behind ordinary uploads.

Before this, uploads, typed bulletins, CAP alerts and emergency speech shared two pipeline
slots: two hour-long uploads held both and a CAP Extreme alert took 84 s to air instead of
0.8 s (issue 16 item 3). Now ordinary work (uploads, the TTS route) gets ``media_slots``
slots and emergency work (CAP alerts, emergency TTS, emergency uploads) its own
``media_emergency_slots`` that ordinary work can never take. Ordinary ffmpeg also runs at a
lower CPU priority (``nice``), so on a two-core controller the emergency lane still gets the
CPU while both ordinary slots are busy.

A full ordinary lane answers 429 ``media.busy`` after a short bounded wait instead of
queueing an upload for minutes (the operator can retry; the browser does not hang). The
emergency lane waits: an alert must not be refused, and its work is short (capped at
``media_emergency_max_duration_s`` of audio).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from controller.core.errors import UserError

# How long an ordinary job waits for a slot before it is told the server is busy: enough
# to absorb the end of a job finishing now, far short of a job's length.
ORDINARY_WAIT_S = 2.0


@dataclass(frozen=True)
class Lane:
    """What a job holding a slot runs with."""

    emergency: bool
    niceness: int  # 0 = normal CPU priority
    deadline: float  # time.monotonic() by which the whole job must be done

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class AudioLanes:
    """The ffmpeg slots of one controller: ordinary and emergency, each bounded."""

    def __init__(
        self,
        *,
        slots: int = 2,
        emergency_slots: int = 2,
        niceness: int = 10,
        max_duration_s: float = 1800.0,
        emergency_max_duration_s: float = 300.0,
        job_timeout_s: float = 600.0,
        ordinary_wait_s: float = ORDINARY_WAIT_S,
    ) -> None:
        self.slots = slots
        self.emergency_slots = emergency_slots
        self.niceness = niceness
        self.max_duration_s = max_duration_s
        self.emergency_max_duration_s = emergency_max_duration_s
        self.job_timeout_s = job_timeout_s
        self.ordinary_wait_s = ordinary_wait_s
        self._ordinary = threading.BoundedSemaphore(slots)
        self._emergency = threading.BoundedSemaphore(emergency_slots)
        self._count_lock = threading.Lock()
        self.in_use = {False: 0, True: 0}  # by lane (emergency?): jobs running now

    @classmethod
    def from_settings(cls, settings: object) -> AudioLanes:
        return cls(
            slots=getattr(settings, "media_slots", 2),
            emergency_slots=getattr(settings, "media_emergency_slots", 2),
            niceness=getattr(settings, "media_ordinary_niceness", 10),
            max_duration_s=getattr(settings, "media_max_duration_s", 1800.0),
            emergency_max_duration_s=getattr(settings, "media_emergency_max_duration_s", 300.0),
            job_timeout_s=getattr(settings, "media_job_timeout_s", 600.0),
        )

    def upload_limit_s(self, emergency: bool) -> float:
        """Audio length an upload may have: emergency uploads have a shorter limit (an alert is
        short, and the emergency lane must stay quick). Speech the controller makes itself is
        bounded by ``max_duration_s`` (its text is already bounded by tts_max_chars)."""
        return self.emergency_max_duration_s if emergency else self.max_duration_s

    @contextlib.contextmanager
    def slot(self, *, emergency: bool) -> Iterator[Lane]:
        """Hold one slot of the lane for a job; 429 ``media.busy`` when the ordinary lane is full.

        The job's deadline starts when it gets its slot: waiting is not processing.
        """
        sem = self._emergency if emergency else self._ordinary
        if not sem.acquire(timeout=None if emergency else self.ordinary_wait_s):
            raise UserError(429, "media.busy", slots=self.slots)
        with self._count_lock:
            self.in_use[emergency] += 1
        try:
            yield Lane(
                emergency=emergency,
                niceness=0 if emergency else self.niceness,
                deadline=time.monotonic() + self.job_timeout_s,
            )
        finally:
            with self._count_lock:
                self.in_use[emergency] -= 1
            sem.release()
