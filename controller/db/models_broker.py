"""When the broker did not answer the controller (controller/services/broker_outages.py).

Kept so a broadcast that played late can say why, station by station, long after the outage:
the probe's state lives in one process's memory and is gone with it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base
from controller.db.types import UTCDateTime


class BrokerOutage(Base):
    __tablename__ = "broker_outages"

    id: Mapped[int] = mapped_column(primary_key=True)
    observer: Mapped[str] = mapped_column(String(64))  # the replica's MQTT client id
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)  # its last answer
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # NULL: not answering yet
