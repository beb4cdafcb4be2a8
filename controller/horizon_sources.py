"""The application's horizon: which features feed a station's desired state, in which order.

This is where the features meet (like runtime.py), so services/desired_state.py imports
none of them: emergencies answered whose rows are not written yet, one-off broadcasts,
then recurring schedules, then live and relayed streams
(docs/live.md); emergencies and their repeats are then set to the emergency volume; LED
boards get their texts from services/led.py.
"""

from __future__ import annotations

from controller.services import broadcasts, emergency, led, live, schedule_horizon
from controller.services.horizon import HorizonSources


def standard() -> HorizonSources:
    return HorizonSources(
        # Emergencies without rows before the one-offs: the rows may be committed between the two
        # queries, and then the one-offs' query gives the same item (taken once).
        items=(emergency.horizon_items, broadcasts.horizon_items, schedule_horizon.horizon_items,
               live.horizon_items),
        adjusters=(emergency.apply_volumes,),
        led=led.content_for,
    )
