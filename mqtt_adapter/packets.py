"""MQTT 3.1.1 packet framing (section 2.2 fixed header, 1.5.3 UTF-8 strings), for the few
places that write packets themselves: the controller's batched QoS 0 receipts
(`ControllerClient.send_qos0`) and the ingest load generator (`benchmarks/loadgen.py`)."""

from __future__ import annotations

import struct


def packet(first_byte: int, body: bytes) -> bytes:
    """`body` behind its fixed header: the packet type/flags byte, then the remaining length
    (7 bits a byte, the high bit set while more bytes follow)."""
    n, length = len(body), bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        length.append(digit | (0x80 if n else 0))
        if not n:
            return bytes((first_byte,)) + bytes(length) + body


def utf8(value: str) -> bytes:
    """A length-prefixed UTF-8 string (topic names, client ids, user names)."""
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw
