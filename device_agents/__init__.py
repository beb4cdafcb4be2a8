"""Agents that run on station hardware (Raspberry Pi) and speak to the controller."""
