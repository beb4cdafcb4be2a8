"""First-run data: the demo area and an admin account."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.security import hash_password
from controller.db.models import Area, AreaGroupMember, User
from controller.db.statuses import AreaLevel

# The demo (docs/areas.md): Tỉnh Phú Thọ (25; Vĩnh Phúc merged into it on 1 July 2025) with two of
# its real communes, official names and codes from the `vietnam-provinces` package, and a group of
# communes a regional operator looks after: the former Huyện Tam Dương.
DEMO_PROVINCE = "25"
DEMO_COMMUNES = ("8869", "8872")  # Xã Tam Dương, Xã Tam Dương Bắc
DEMO_GROUP = "Khu vực Tam Dương (huyện cũ)"


def ensure_demo_areas(session: Session) -> list[Area]:
    """Return the demo communes, importing them (and the province and group) once."""
    from controller.services import area_import

    result = area_import.import_province(session, DEMO_PROVINCE, only_codes=DEMO_COMMUNES)
    q = select(Area).where(Area.level == AreaLevel.COMMUNE, Area.code.in_(DEMO_COMMUNES)).order_by(Area.code)
    communes = list(session.scalars(q))
    q_group = select(Area).where(Area.level == AreaLevel.GROUP, Area.name == DEMO_GROUP)
    group = session.scalars(q_group).first()
    if group is None:
        group = Area(level=AreaLevel.GROUP, name=DEMO_GROUP, parent_id=result.province_id,
                     former_names=["Huyện Tam Dương (Tỉnh Vĩnh Phúc)"])  # fmt: skip
        session.add(group)
        session.flush()
        session.add_all(AreaGroupMember(group_id=group.id, commune_id=c.id) for c in communes)
        session.flush()
    return communes


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
