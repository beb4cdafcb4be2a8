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

# Event ids named in one receipt (controller -> station); more go in several receipts.
RECEIPT_MAX_IDS = 500
