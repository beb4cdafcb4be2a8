"""The amplifier relay switches in the order it is asked (device_agents/speaker/relay.py).

Found by the chaos run's serial ledger (`unamplified`, docs/chaos.md): on a noisy RS-485 line
an idle switch-off can take the driver's retries (hundreds of milliseconds) while the next item
switches the relay on; the off reached the cabinet last and the item sounded unamplified with
no fault reported. The line's timing is not reproducible on a pty, so the cabinet here is a
scripted one whose off is held until the test lets it go."""

from __future__ import annotations

import asyncio

from device_agents.hardware.amplifier import Amplifier, PowerReading
from device_agents.speaker.relay import AmplifierRelay


class SlowOffCabinet(Amplifier):
    """A relay whose switch-off answers only when `let_off_go` is set; it records what it did."""

    def __init__(self) -> None:
        self.relay_on = False
        self.history: list[bool] = []
        self.off_started = asyncio.Event()
        self.let_off_go = asyncio.Event()

    async def set_power(self, on: bool) -> None:
        if not on:
            self.off_started.set()
            await self.let_off_go.wait()
        self.relay_on = on
        self.history.append(on)

    async def read(self) -> PowerReading:
        raise NotImplementedError

    async def close(self) -> None:
        pass


async def test_an_item_arriving_during_a_slow_switch_off_plays_amplified() -> None:
    cabinet = SlowOffCabinet()
    relay = AmplifierRelay(cabinet, hold_s=0.0, on_fault=lambda on, error: None)
    async with relay.held():
        assert cabinet.relay_on
    async with asyncio.timeout(5):
        await cabinet.off_started.wait()  # the idle switch-off is on the line
        next_item = asyncio.create_task(relay.acquire())
        await asyncio.sleep(0)  # the item asks for the relay while the off is still out
        cabinet.let_off_go.set()
        await next_item
    assert cabinet.relay_on, f"the item began with the amplifier off: {cabinet.history}"
    assert cabinet.history == [True, False, True]
    relay.release()
    relay.close()

