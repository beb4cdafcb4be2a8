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
# docs/protocol.md "Media", docs/emergency.md "Audio inside the PLAY"). 160 KiB of stored media
# is 20 s of the stored Opus whatever it carries: the 32 kbit/s VBR encoder spends ~3.6-4 kB/s
# on speech (20 s: ~80 kB, ~40 s fit) but up to ~7.8 kB/s on a pure tone (20 s of a siren sweep:
# 124 kB; of steady tones: 124-156 kB). On the wire it grows by 16/9 (base64 inside the JSON,
# then the envelope's base64url): ~285 KiB for a full clip, under a third of MAX_PACKET_SIZE.
# Why not more: the broker hands the whole PLAY to every station of the group topic (N times
# the packet out of one broker host, and on each station's 4G plan), which is what the lead
# allows for; longer audio keeps the HTTP path (GET /media/<sha256>).
INLINE_MEDIA_MAX_BYTES = 160 * 1024
# All the inline media of one item together: its signed PLAY (~16/9 of this, ~455 KiB) stays
# under half of MAX_PACKET_SIZE.
INLINE_ITEM_MAX_BYTES = 256 * 1024

# Event ids named in one receipt (controller -> station); more go in several receipts.
RECEIPT_MAX_IDS = 500
