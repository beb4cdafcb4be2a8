"""The amplifier's power relay, shared by everything that sounds on a speaker station.

On while anyone needs it (a bulletin, a stream, a test tone), off `hold_s` after the last
one let go, so back-to-back items do not click the relay between them. A relay that does
not answer is reported and the item plays anyway: many cabinets have the amplifier
hard-wired on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from device_agents.hardware.amplifier import Amplifier, HardwareError


class AmplifierRelay:
    def __init__(self, amp: Amplifier, *, hold_s: float, on_fault: Callable[[bool, str], None]) -> None:
        self._amp = amp
        self._hold_s = hold_s
        self._on_fault = on_fault  # (wanted on, error): the role reports an amplifier_relay fault
        self._users = 0
        self._off: asyncio.TimerHandle | None = None
        self._switching_off: asyncio.Task[None] | None = None
        self._closed = False
        # One switch at a time, in the order asked: an idle switch-off still retrying on a noisy
        # RS-485 line while an item switches the relay on could reach the board last and leave
        # the item unamplified (seen in the chaos run, docs/chaos.md).
        self._switching = asyncio.Lock()

    @property
    def busy(self) -> bool:
        """Someone is using the amplifier now."""
        return self._users > 0

    async def acquire(self) -> None:
        self._users += 1
        if self._off is not None:
            self._off.cancel()
            self._off = None
        if self._users == 1:
            try:
                await self._set(True)
            except asyncio.CancelledError:
                # Cancelled while the relay switches (a new desired state re-arms a pending item;
                # slow on a noisy RS-485 line): this user never got the amplifier. Kept counted,
                # the relay would stay "in use" for good, and no later item would switch it on.
                self.release()
                raise

    def release(self) -> None:
        self._users -= 1
        if self._users == 0 and not self._closed:
            self._off = asyncio.get_running_loop().call_later(self._hold_s, self._switch_off)

    def _switch_off(self) -> None:
        self._off = None
        self._switching_off = asyncio.get_running_loop().create_task(self._idle_off())

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def close(self) -> None:
        """The idle switch-off: nothing is left to switch when the station stops — neither an off
        already on its way to the board nor one a play let go of while the station stopped (it
        would reach the board, or the stopped station's store, after the stop)."""
        self._closed = True
        if self._off is not None:
            self._off.cancel()
            self._off = None
        if self._switching_off is not None:
            self._switching_off.cancel()
            self._switching_off = None

    async def _idle_off(self) -> None:
        await self._set(False)

    async def _set(self, on: bool) -> None:
        async with self._switching:
            if not on and (self._users > 0 or self._closed):
                return  # someone took the amplifier while the off waited for its turn
            try:
                await self._amp.set_power(on)
            except HardwareError as exc:
                self._on_fault(on, str(exc))
