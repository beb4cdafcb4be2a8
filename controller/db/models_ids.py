"""The lowest id the next row of a table may take (controller/db/id_floors.py)."""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models import Base


class IdFloor(Base):
    __tablename__ = "id_floors"

    table_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    floor: Mapped[int] = mapped_column(BigInteger)
