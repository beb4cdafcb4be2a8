"""Alarms: rules (rules.py), the engine that opens and resolves them (engine.py), and
notifications (notify.py). See docs/health.md."""
