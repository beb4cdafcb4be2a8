"""Size limits of the wire contract, shared by the broker configs, the controller and tests.

One place, so the Mosquitto configs the project generates (communecast/mosquitto.py),
the shipped ones (deploy/) and the controller's ingest agree: a station cannot make the
broker or the controller hold an 8 MiB event, and what a station writes into free-text
fields stays small enough to show in a report.
"""

from __future__ import annotations

# Mosquitto's `max_packet_size` (EMQX: mqtt.max_packet_size): a client sending a bigger
# packet is disconnected. The largest legitimate packet is a desired state, itself capped
# by the `desired_state_max_bytes` setting (512 KiB by default), well below this.
MAX_PACKET_SIZE = 1024 * 1024

# An event's free text: longer is cut at ingest and ends with TRUNCATED_MARK.
EVENT_REASON_MAX_CHARS = 1000
# An event's `detail` as compact JSON: an ack's item list of a full horizon is ~tens of KiB.
EVENT_DETAIL_MAX_BYTES = 256 * 1024
TRUNCATED_MARK = "…[truncated]"

# Audio carried inside a signed emergency PLAY (`MediaRef.inline`: base64 of the stored file;
# docs/protocol.md "Media", docs/emergency.md "Audio inside the PLAY"). 128 KiB of stored media
# is 20 s of the stored Opus even for tonal audio such as a siren (the 32 kbit/s VBR encoder
# spends ~6.2 KB/s on a pure tone) and ~30 s of speech (~4 KB/s). On the wire it grows by 16/9
# (base64 inside the JSON, then the envelope's base64url): ~230 KiB per clip, a quarter of
# MAX_PACKET_SIZE. Why not more: the broker hands the whole PLAY to every station of the group
# topic (N x the packet through one broker, and on each station's 4G plan), and a command this
# size already takes a Pi's agent a few milliseconds to verify; longer audio keeps the HTTP path.
INLINE_MEDIA_MAX_BYTES = 128 * 1024
# All the inline media of one item together: its signed PLAY stays under half of MAX_PACKET_SIZE.
INLINE_ITEM_MAX_BYTES = 256 * 1024

# Event ids named in one receipt (controller -> station); more go in several receipts.
RECEIPT_MAX_IDS = 500
