"""CuttableProxy moved to testkit/proxy.py (the chaos bench uses it too); kept importable here."""

from testkit.proxy import CuttableProxy

__all__ = ["CuttableProxy"]
