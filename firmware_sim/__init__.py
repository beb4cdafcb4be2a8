"""Byte-level stand-ins for station hardware, so agents run their real code in tests.

The simulator speaks the same wire protocols as the boards a station uses
(Modbus RTU over a serial line, raw PCM to a sound sink) and is written
independently of the client libraries the agents use, so each side checks the other.
"""
