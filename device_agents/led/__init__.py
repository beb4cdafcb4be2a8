"""LED-board agent: signed content in, byte-level frames out (Alpha, Onbon BX-5K, bitmap panels)."""
