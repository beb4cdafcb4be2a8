"""An in-process amplifier cabinet: the Amplifier seam without a serial line per station.

The fleet simulator (fleet.py) runs thousands of stations in one process;
a pty and a pymodbus client thread per station would cost more than the agent itself.
This talks to the same `firmware_sim.relay_board.AmplifierCabinet` model (relay board,
power meter, climate sensor, faults) directly, so readings, relay history and faults
behave as on the byte-level path; the per-station pty path stays for the normal tests.
"""

from __future__ import annotations

from device_agents.hardware.amplifier import Amplifier, HardwareError, PowerReading
from firmware_sim.relay_board import AmplifierCabinet


class SimAmplifier(Amplifier):
    def __init__(self, cabinet: AmplifierCabinet) -> None:
        self.cabinet = cabinet

    def _check(self) -> None:
        if self.cabinet.faults.no_reply:
            raise HardwareError("no reply from the relay board (simulated bus fault)")

    async def set_power(self, on: bool) -> None:
        self._check()
        self.cabinet.relay.write_coils(self.cabinet.amp_coil, [on])

    async def read(self) -> PowerReading:
        self._check()
        m = self.cabinet.measure()
        return PowerReading(
            relay_on=m.relay_on, mains_v=m.mains_v, amp_current_a=m.current_a, power_w=m.power_w,
            frequency_hz=m.frequency_hz, cabinet_temp_c=m.temperature_c, humidity_pct=m.humidity_pct,
            energy_wh=m.energy_wh, power_factor=m.power_factor,
        )  # fmt: skip

    async def close(self) -> None:
        """Nothing to release."""
