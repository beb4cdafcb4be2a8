"""Load generator and bare subscriber for `communecast bench ingest` (separate processes,
so the numbers are not bent by sharing one interpreter with what is measured).

    python -m benchmarks.loadgen publish --rate R --seconds T --devices N --tag TAG ...
    python -m benchmarks.loadgen drain --expect N --topic 'bench/+/evt' ...
Each prints one JSON line with what it did.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from mqtt_adapter.packets import packet, utf8
from protocol.messages import Event, EventKind


def _client(args: argparse.Namespace, client_id: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if args.username:
        c.username_pw_set(args.username, args.password)
    c.max_inflight_messages_set(2000)
    c.max_queued_messages_set(0)
    return c


def _event(tag: str, n: int) -> bytes:
    ev = Event(
        id=f"{tag}{n:09d}{uuid.uuid4().hex[:8]}", kind=EventKind.FAULT, ts=datetime.now(UTC),
        reason="bench", detail={"seq": n, "mains_v": 229.8, "amp_current_a": 0.61},
    )  # fmt: skip
    return ev.model_dump_json().encode()


def _connect(args: argparse.Namespace) -> socket.socket:
    """An MQTT 3.1.1 session (clean, keepalive 60 s) over a plain socket, CONNACK checked."""
    flags = 0x02 | ((0xC0 if args.password else 0x80) if args.username else 0)
    client_id = f"loadgen-{uuid.uuid4().hex[:6]}"
    body = utf8("MQTT") + bytes((4, flags)) + struct.pack("!H", 60) + utf8(client_id)
    if args.username:
        body += utf8(args.username) + (utf8(args.password) if args.password else b"")
    sock = socket.create_connection((args.host, args.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(packet(0x10, body))
    connack = sock.recv(4)
    if len(connack) < 4 or connack[0] != 0x20 or connack[3] != 0:
        raise SystemExit(f"broker refused the connection: {connack!r}")
    return sock


def publish(args: argparse.Namespace) -> dict[str, object]:
    """QoS 1 PUBLISH packets encoded before the clock starts and written straight to a socket,
    a tick's worth (10 ms) per write; a thread counts the PUBACKs. paho's publish (a
    MQTTMessageInfo, a lock and a write per message) topped out near 5,000 msg/s per process
    on two shared cores, too little to find the controller's ceiling (issue 21: 30,000/s)."""
    total = int(args.rate * args.seconds)
    topics = [args.topic.format(device=f"bench-{d}") for d in range(args.devices)]
    qos1 = 0x30 | 0x02
    packets = [packet(qos1, utf8(topics[n % args.devices]) + struct.pack("!H", n % 65535 + 1)
                       + _event(args.tag, n)) for n in range(total)]  # fmt: skip
    sock = _connect(args)
    acked = 0
    all_acked = threading.Event()

    def count_acks() -> None:
        nonlocal acked
        buf = b""
        while acked < total:
            data = sock.recv(65536)
            if not data:
                break
            buf += data
            whole = len(buf) - len(buf) % 4  # PUBACK: 0x40 0x02 and a packet id
            acked += buf[0:whole:4].count(0x40)
            buf = buf[whole:]
        all_acked.set()

    reader = threading.Thread(target=count_acks, daemon=True)
    reader.start()
    tick = 0.01
    t0, started_at = time.monotonic(), time.time()
    sent = 0
    while sent < total:
        due = min(total, int((time.monotonic() - t0 + tick) * args.rate))
        # Never more than 30,000 unacknowledged: packet ids are reused after 65,535.
        due = min(due, acked + 30_000)
        if due > sent:
            sock.sendall(b"".join(packets[sent:due]))
            sent = due
        time.sleep(tick)
    all_acked.wait(60)
    elapsed = time.monotonic() - t0
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    # started_at (wall clock): the bench times the controller from the first publish, not
    # from this process's start-up.
    return {"published": acked, "seconds": elapsed, "rate": acked / elapsed, "started_at": started_at}


def drain(args: argparse.Namespace) -> dict[str, object]:
    got = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        nonlocal got, first, last
        now = time.monotonic()
        if got == 0:
            first = now
        got += 1
        last = now
        if got >= args.expect:
            done.set()

    ready = threading.Event()
    client = _client(args, f"drain-{uuid.uuid4().hex[:6]}")
    client.on_message = on_message
    client.on_subscribe = lambda *a: ready.set()
    client.connect(args.host, args.port, keepalive=60)
    client.subscribe(args.topic, qos=args.qos)
    client.loop_start()
    ready.wait(10)
    print(json.dumps({"ready": True}), flush=True)
    done.wait(args.timeout)
    client.loop_stop()
    span = max(last - first, 1e-9)
    return {"received": got, "seconds": span, "rate": got / span if got > 1 else 0.0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.loadgen")
    p.add_argument("mode", choices=["publish", "drain"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--qos", type=int, default=1, help="drain: its subscription's QoS (publish always "
                   "sends QoS 1, the stations' events)")
    p.add_argument("--topic", default="cc/v1/dev/{device}/evt")
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--devices", type=int, default=100)
    p.add_argument("--tag", default="b")
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60)
    args = p.parse_args(argv)
    result = publish(args) if args.mode == "publish" else drain(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
