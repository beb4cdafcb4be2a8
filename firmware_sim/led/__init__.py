"""Simulated LED-board controllers (Alpha, Onbon BX-5K) at the byte level."""
