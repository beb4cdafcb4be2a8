"""Where a user's alarms reach them (SMS, Zalo, quiet hours): /api/v1/account/alerts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from controller.schemas.common import Out


class AlertPrefsCreate(BaseModel):
    """PUT /api/v1/account/alerts[/{user_id}]: the whole setting (what is left out is cleared).
    Checked like the panel's form (usecases/alerts.py): 422 with the same messages."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(default="", max_length=80, description="digits, optionally a leading +")
    zalo_user_id: str = Field(default="", max_length=80, description="the OA follower's user id")
    sms: bool = False
    zalo: bool = False
    quiet_start: str = Field(default="", max_length=80, description='local "HH:MM", e.g. "22:00"')
    quiet_end: str = Field(default="", max_length=80, description='local "HH:MM", e.g. "06:00"')


class AlertPrefsPublic(Out):
    user_id: int
    username: str
    phone: str
    zalo_user_id: str
    sms: bool
    zalo: bool
    quiet_start: str
    quiet_end: str
    critical_kinds: list[str] = Field(description="alarm kinds that also reach the user in quiet hours")
