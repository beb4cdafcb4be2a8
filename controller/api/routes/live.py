"""Live voice (docs/live.md): start a session, send the microphone over a WebSocket, stations
fetch it over HTTP, end it.

WebSocket frames from the operator: binary, S16LE mono 16 kHz PCM, an even number of bytes,
at most 64 KiB each (the panel sends 20 ms = 640 bytes). Text frames from the controller:
JSON status {"type": "status", "listeners": n, "received_s": s} about twice a second, and
{"type": "ended"} when the session is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from controller.api.deps import OPERATOR_ROLES, db_session, lang, require_role, runtime
from controller.api.params import Id
from controller.api.refusals import policy_refusal
from controller.core.errors import UserError
from controller.core.permissions import Action, roles_with
from controller.db.models import User
from controller.db.statuses import LiveStatus, StreamKind
from controller.runtime import Runtime
from controller.schemas.common import NOT_FOUND, POLICY_REFUSAL, binary
from controller.schemas.live import LiveOut
from controller.services import live
from controller.services.auth import user_for_token
from controller.services.policy import PolicyViolation
from controller.usecases import streams
from controller.web.sessions import SESSION_COOKIE, csrf_ok, load_session

router = APIRouter(prefix="/api/v1", tags=["live"])
SENDERS = tuple(r for r in roles_with(Action.BROADCAST_SEND) if r in OPERATOR_ROLES) or OPERATOR_ROLES
STATUS_EVERY_S = 0.5
STREAM_TOKEN_HEADER = "x-stream-token"  # noqa: S105 - a header name, not a secret
# A session whose operator is gone this long (page closed, network lost) ends by itself, so an
# emergency-priority live item never holds the loudspeakers in silence until live_max_minutes.
ORPHAN_END_S = 30.0


@router.post("/live", status_code=201, response_model=LiveOut, response_model_exclude_unset=True,
             responses=POLICY_REFUSAL)
def start_live(
    req: live.LiveCreate,
    request: Request,
    user: User = Depends(require_role(*SENDERS)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    try:
        ls, device_ids = streams.start_live(s, user, req, max_minutes=rt.settings.live_max_minutes)
    except PolicyViolation as exc:
        return policy_refusal(exc, lang(request))  # type: ignore[return-value]
    s.commit()
    channel = live.hub_of(request.app.state).open(ls)
    return live.live_json(ls, channel) | {"stations": len(device_ids)}


@router.get("/live/{stream_id}", response_model=LiveOut, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def get_live(
    stream_id: Id, request: Request, user: User = Depends(require_role(*SENDERS)),
    s: Session = Depends(db_session),
) -> dict[str, Any]:  # fmt: skip
    ls = streams.get_live(s, user, stream_id)
    return live.live_json(ls, live.hub_of(request.app.state).get(ls.id))


@router.post("/live/{stream_id}/end", response_model=LiveOut, response_model_exclude_unset=True,
             responses=NOT_FOUND)
def end_live(
    stream_id: Id, request: Request, user: User = Depends(require_role(*SENDERS)),
    s: Session = Depends(db_session),
) -> dict[str, Any]:  # fmt: skip
    ls = streams.end_live(s, user, stream_id)
    s.commit()
    hub = live.hub_of(request.app.state)
    hub.end(ls.id)
    return live.live_json(ls, hub.get(ls.id))


def _managed_stream(rt: Runtime, stream_id: int, user: User) -> live.LiveStream | int:
    """The session row (detached) if `user` may speak into it, else the WebSocket close code."""
    with rt.db.session() as s:
        try:
            ls = live.managed_stream(s, stream_id, "live", user)
        except UserError as exc:
            return 4404 if exc.status == 404 else 4403
        s.expunge(ls)
        return ls


def _load_stream(rt: Runtime, stream_id: int) -> live.LiveStream | None:
    """The session row, detached from its database session (read in a worker thread)."""
    with rt.db.session() as s:
        ls = s.get(live.LiveStream, stream_id)
        if ls is not None:
            s.expunge(ls)
        return ls


@router.get("/live/{stream_id}/stream", response_class=StreamingResponse, responses={
    **binary("raw S16LE mono 16 kHz PCM, chunked, as the operator speaks", "audio/L16"), **NOT_FOUND})
async def live_stream(stream_id: Id, request: Request) -> StreamingResponse:
    """What a station plays: raw PCM, chunked, each chunk written as soon as the operator sent it.

    The X-Stream-Token header (random, per session) is the capability: it reaches stations only
    inside their signed desired state, as /media's content addresses do.
    """
    token = request.headers.get(STREAM_TOKEN_HEADER, "")
    rt: Runtime = request.app.state.runtime
    ls = await run_in_threadpool(_load_stream, rt, stream_id)
    if ls is None or ls.kind != StreamKind.LIVE or not live.token_ok(ls, token):
        raise UserError(404, "live.not_found", id=stream_id)
    if ls.status != LiveStatus.ACTIVE or ls.end_at <= datetime.now(UTC):
        raise UserError(410, "live.ended", id=stream_id)
    channel = live.hub_of(request.app.state).open(ls)
    listener = channel.subscribe()
    return StreamingResponse(
        channel.listen(listener),
        media_type=f"audio/L16;rate={live.LIVE_RATE};channels=1",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


SUBPROTOCOL = "communecast.live"


def _ws_csrf(ws: WebSocket) -> str | None:
    """The panel passes its CSRF token as a subprotocol ("csrf.<token>"): never in a logged URL."""
    for proto in ws.scope.get("subprotocols") or []:
        if proto.startswith("csrf."):
            return str(proto[5:])
    return None


def _ws_user(rt: Runtime, ws: WebSocket) -> User | None:
    """The operator behind a WebSocket: an API bearer token (Authorization header), or a panel
    session cookie with that session's CSRF token (subprotocol) from a same-site Origin."""
    header = ws.headers.get("authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    with rt.db.session() as s:
        user: User | None = None
        if bearer:
            user = user_for_token(s, bearer, datetime.now(UTC))
        else:
            origin = ws.headers.get("origin")
            if origin and urlsplit(origin).netloc != ws.headers.get("host"):
                return None
            web = load_session(s, ws.cookies.get(SESSION_COOKIE))
            if web is not None and csrf_ok(web.csrf_token, _ws_csrf(ws)):
                user = web.user
        if user is None or user.role not in SENDERS:
            return None
        s.expunge(user)
        return user


@router.websocket("/live/{stream_id}/ws")
async def live_ws(ws: WebSocket, stream_id: Id) -> None:
    rt: Runtime = ws.app.state.runtime
    user = await run_in_threadpool(_ws_user, rt, ws)
    if user is None:
        await ws.close(code=4401)  # before accept: the handshake gets 403
        return
    ls = await run_in_threadpool(_managed_stream, rt, stream_id, user)
    if isinstance(ls, int):  # not found, or another area's session: refused before accept
        await ws.close(code=ls)
        return
    await ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in (ws.scope.get("subprotocols") or []) else None)
    channel = live.hub_of(ws.app.state).open(ls)
    if channel.ended or ls.status != LiveStatus.ACTIVE:
        await ws.send_text(json.dumps({"type": "ended"}))
        await ws.close(code=1000)
        return
    channel.operators += 1
    last_status = 0.0
    try:
        await _send_status(ws, channel)
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                break
            data = msg.get("bytes")
            if data is not None:
                if len(data) % 2 or len(data) > live.MAX_FRAME_BYTES:
                    await ws.close(code=1003, reason="S16LE mono 16 kHz, even length, <= 64 KiB")
                    break
                channel.publish(data)
            if channel.ended:
                await ws.send_text(json.dumps({"type": "ended"}))
                await ws.close(code=1000)
                break
            if time.monotonic() - last_status >= STATUS_EVERY_S:
                last_status = time.monotonic()
                await _send_status(ws, channel)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        channel.operators -= 1
        with contextlib.suppress(Exception):
            await ws.close()
        if channel.operators == 0 and not channel.ended:
            orphan = asyncio.get_running_loop().create_task(_end_if_orphaned(rt, ws.app.state, channel))
            _ORPHAN_TASKS.add(orphan)
            orphan.add_done_callback(_ORPHAN_TASKS.discard)


_ORPHAN_TASKS: set[asyncio.Task[None]] = set()


async def _end_if_orphaned(rt: Runtime, state: Any, channel: live.Channel) -> None:
    await asyncio.sleep(ORPHAN_END_S)
    if channel.operators or channel.ended:
        return

    def end() -> None:
        with rt.db.session() as s:
            live.end_live(s, channel.stream_id, None)

    await run_in_threadpool(end)
    live.hub_of(state).end(channel.stream_id)


async def _send_status(ws: WebSocket, channel: live.Channel) -> None:
    await ws.send_text(json.dumps({
        "type": "status", "listeners": channel.listener_count,
        "received_s": round(channel.received / live.LIVE_BYTES_PER_S, 2),
    }))  # fmt: skip
