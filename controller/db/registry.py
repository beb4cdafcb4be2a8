"""All tables: the core models plus every `controller/db/models_<feature>.py` module.

Import this (not models.py alone) wherever the complete metadata matters (Alembic).
"""

from __future__ import annotations

import importlib
import pkgutil

import controller.db
from controller.db.models import Base

for _info in sorted(pkgutil.iter_modules(controller.db.__path__), key=lambda m: m.name):
    if _info.name.startswith("models_"):
        importlib.import_module(f"controller.db.{_info.name}")

metadata = Base.metadata
