"""User accounts: create and (de)activate, with the role/area rules of core/permissions.

Kept free of HTTP so an API route (`POST /api/v1/users`, not built yet) can call the same
functions. Errors are catalog msgids shown to the admin as they are.
"""

from __future__ import annotations

import re

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from controller.core.permissions import ROLE_LEVEL, ROLES
from controller.core.security import hash_password
from controller.db.models import Area, User
from controller.db.models_web import WebSession
from controller.services import audit
from controller.services.auth import revoke_tokens
from controller.web.sessions import MIN_PASSWORD_LEN

USERNAME_RE = re.compile(r"^[a-z0-9._-]{3,64}$")


class AccountError(ValueError):
    """Carries a Vietnamese msgid (the English catalog translates it)."""


def create_user(s: Session, admin: User, username: str, password: str, role: str,
                area_id: int | None) -> User:
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise AccountError("Tên đăng nhập chỉ gồm chữ thường không dấu, số, dấu chấm, gạch (3–64 ký tự).")
    if len(password) < MIN_PASSWORD_LEN:
        raise AccountError("Mật khẩu mới phải có ít nhất 10 ký tự.")
    if role not in ROLES:
        raise AccountError("Vai trò không hợp lệ.")
    area = s.get(Area, area_id) if area_id else None
    if area_id and area is None:
        raise AccountError("Không tìm thấy địa bàn đã chọn.")
    needed = ROLE_LEVEL.get(role)
    if needed and (area is None or area.level != needed):
        raise AccountError("Vai trò này cần một địa bàn đúng cấp (tỉnh, cụm xã hoặc xã).")
    if role == "admin":
        area = None
    if s.scalars(select(User).where(User.username == username)).first() is not None:
        raise AccountError("Tên đăng nhập này đã có.")
    user = User(username=username, password_hash=hash_password(password), role=role,
                area_id=area.id if area else None, active=True)
    s.add(user)
    s.flush()
    audit.record(s, admin.id, "user.create", "user", user.id, username=username, role=role,
                 area_id=user.area_id)
    return user


def set_active(s: Session, admin: User, user_id: int, active: bool) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise AccountError("Không tìm thấy tài khoản.")
    if user.id == admin.id and not active:
        raise AccountError("Không thể tự khoá tài khoản của mình.")
    user.active = active
    if not active:  # sessions and API tokens end now; re-activating does not revive them
        s.execute(delete(WebSession).where(WebSession.user_id == user.id))
        revoke_tokens(s, user.id)
    audit.record(s, admin.id, "user.activate" if active else "user.deactivate", "user", user.id)
    return user
