"""Load generator and bare subscriber for `communecast bench ingest` (separate processes,
so the numbers are not bent by sharing one interpreter with what is measured).

    python -m benchmarks.loadgen publish --rate R --seconds T --devices N --tag TAG ...
    python -m benchmarks.loadgen drain --expect N --topic 'bench/+/evt' ...
Each prints one JSON line with what it did.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

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


def publish(args: argparse.Namespace) -> dict[str, object]:
    client = _client(args, f"loadgen-{uuid.uuid4().hex[:6]}")
    client.connect(args.host, args.port, keepalive=60)
    client.loop_start()
    total = int(args.rate * args.seconds)
    # Built before the clock starts: the Python publisher shares 2 cores with what it measures.
    topics = [args.topic.format(device=f"bench-{d}") for d in range(args.devices)]
    messages = [(topics[n % args.devices], _event(args.tag, n)) for n in range(total)]
    publish_one = client.publish
    qos = args.qos
    t0, started_at = time.monotonic(), time.time()
    last = None
    for n, (topic, payload) in enumerate(messages):
        due = t0 + n / args.rate
        delay = due - time.monotonic()
        if delay > 0.002:
            time.sleep(delay)
        last = publish_one(topic, payload, qos=qos)
    if last is not None:
        last.wait_for_publish(timeout=60)
    elapsed = time.monotonic() - t0
    client.loop_stop()
    client.disconnect()
    # started_at (wall clock): the bench times the controller from the first publish, not
    # from this process's start-up.
    return {"published": total, "seconds": elapsed, "rate": total / elapsed, "started_at": started_at}


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
    p.add_argument("--qos", type=int, default=1)
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
