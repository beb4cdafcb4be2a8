"""OASIS CAP 1.2 alert input: safe parsing and XSD validation, area mapping, and turning an
alert into a broadcast (docs/cap.md)."""
