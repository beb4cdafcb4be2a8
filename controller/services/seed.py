"""First-run data: the demo area and an admin account."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.security import hash_password
from controller.db.models import Area, User
from controller.db.statuses import AreaLevel

# The seed plan's province (Kế hoạch tuyên truyền CĐS tỉnh Vĩnh Phúc), one district, two communes.
DEMO_AREAS = ("Tỉnh Vĩnh Phúc", "Huyện Tam Dương", ("Xã Hợp Hòa", "Xã Kim Long"))


def ensure_demo_areas(session: Session) -> list[Area]:
    """Return the demo communes, creating the area tree once."""
    province_name, district_name, commune_names = DEMO_AREAS
    province = session.scalars(select(Area).where(Area.code == "VP")).first()
    if province is None:
        province = Area(level=AreaLevel.PROVINCE, name=province_name, code="VP")
        district = Area(level=AreaLevel.DISTRICT, name=district_name, code="VP-TD", parent=province)
        session.add_all([province, district])
        for i, name in enumerate(commune_names, start=1):
            session.add(Area(level=AreaLevel.COMMUNE, name=name, code=f"VP-TD-{i:02d}", parent=district))
        session.flush()
    return list(session.scalars(select(Area).where(Area.level == AreaLevel.COMMUNE).order_by(Area.id)))


def ensure_admin(session: Session, password: str, username: str = "admin", *, reset: bool = True) -> User:
    """Create the admin account; with reset, also set its password to `password`."""
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        user = User(username=username, password_hash=hash_password(password), role="admin")
        session.add(user)
    elif reset:
        user.password_hash = hash_password(password)
        user.active = True
    session.flush()
    return user
