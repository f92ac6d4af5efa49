from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select
from starlette.datastructures import UploadFile

from api.deps import ActorDep, PageDep, SessionDep, SettingsDep, TransactionRoute
from api.schemas import ListResponse
from welfare import wakeup
from welfare.authz import Actor
from welfare.errors import InvalidInput
from welfare.incidents import photos as incident_photos
from welfare.incidents import responders, staff_view, timeline
from welfare.incidents import service as incidents
from welfare.incidents.models import (
    CLOSED,
    AcknowledgeBody,
    Incident,
    IncidentCreate,
    IncidentDetail,
    IncidentEvent,
    IncidentSummary,
    NoteCreate,
    ResidentForResponder,
    Resolution,
)

# Event ids are 64-bit signed on PostgreSQL; a larger one would fail the query mid-stream.
MAX_EVENT_ID = 2**63 - 1

router = APIRouter(route_class=TransactionRoute, prefix="/api/v1/incidents", tags=["incidents"])


@router.post(
    "",
    response_model=IncidentDetail,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "model": IncidentDetail,
            "description": "the same request again, or reused open incident",
        }
    },
)
def open_incident(
    data: IncidentCreate, response: Response, session: SessionDep, actor: ActorDep
) -> IncidentDetail:
    """Report found (or missing). Repeating a `client_request_id` returns the same incident with
    200; an open incident for the same resident is reused."""
    opened = incidents.open_incident(session=session, actor=actor, data=data)
    if not opened.created:
        response.status_code = status.HTTP_200_OK
    return staff_view.detail_of(session, opened.incident, actor)


@router.get("", response_model=ListResponse[IncidentSummary])
def list_incidents(
    session: SessionDep,
    actor: ActorDep,
    page: PageDep,
    open_only: bool = False,
    site_id: uuid.UUID | None = None,
) -> ListResponse[IncidentSummary]:
    rows, total = incidents.list_incidents(
        session=session,
        actor=actor,
        limit=page.limit,
        offset=page.offset,
        open_only=open_only,
        site_id=site_id,
    )
    return ListResponse(
        items=[staff_view.summary_of(r) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{incident_id}", response_model=IncidentDetail)
def read_incident(incident_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> IncidentDetail:
    return staff_view.read_detail(session=session, actor=actor, incident_id=incident_id)


@router.post("/{incident_id}/acknowledge", response_model=IncidentDetail)
def acknowledge(
    incident_id: uuid.UUID, body: AcknowledgeBody, session: SessionDep, actor: ActorDep
) -> IncidentDetail:
    """Staff reached the family by phone: confirms and stops every pending step."""
    incident = incidents.acknowledge(
        session=session, actor=actor, incident_id=incident_id, contact_id=body.contact_id
    )
    return staff_view.detail_of(session, incident, actor)


@router.post("/{incident_id}/notes", response_model=IncidentDetail)
def add_note(
    incident_id: uuid.UUID, body: NoteCreate, session: SessionDep, actor: ActorDep
) -> IncidentDetail:
    incident = incidents.add_note(
        session=session,
        actor=actor,
        incident_id=incident_id,
        note=body.text,
        visibility=body.visibility,
    )
    return staff_view.detail_of(session, incident, actor)


@router.post("/{incident_id}/resolve", response_model=IncidentDetail)
def resolve(
    incident_id: uuid.UUID, body: Resolution, session: SessionDep, actor: ActorDep
) -> IncidentDetail:
    incident = incidents.resolve(session=session, actor=actor, incident_id=incident_id, data=body)
    return staff_view.detail_of(session, incident, actor)


@router.post("/{incident_id}/cancel", response_model=IncidentDetail)
def cancel(incident_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> IncidentDetail:
    incident = incidents.cancel(session=session, actor=actor, incident_id=incident_id)
    return staff_view.detail_of(session, incident, actor)


@router.post(
    "/{incident_id}/claim",
    response_model=IncidentDetail,
    responses={201: {"model": IncidentDetail, "description": "claimed now"}},
)
def claim(
    incident_id: uuid.UUID, response: Response, session: SessionDep, actor: ActorDep
) -> IncidentDetail:
    """A guard of the site takes the incident on; from then until it closes they may read the
    resident's card and household (`GET .../resident`). Claiming again answers 200."""
    incident, created = responders.claim(session=session, actor=actor, incident_id=incident_id)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return staff_view.detail_of(session, incident, actor)


# --- the photo a guard took ---------------------------------------------------------------------


async def read_upload(request: Request, settings: SettingsDep) -> bytes:
    """The image from a multipart form (field `file`, like the resident photo upload) or the raw
    request body. At most one byte over the limit is read, so an oversized one is a clear 413."""
    limit = settings.max_photo_bytes + 1
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("file", "send the image in a form field named 'file'")
        data = await upload.read(limit)
    else:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        data = b"".join(chunks)[:limit]
    if not data:
        raise InvalidInput("file", "the file is empty: choose the photo again")
    return data


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "JPEG, PNG or WebP: the raw image as the body, or a multipart form with "
        "the image in the field `file`. The content decides the type, not a name or header.",
        "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}
IMAGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "JPEG"}
}


@router.put(
    "/{incident_id}/photo",
    response_model=IncidentDetail,
    openapi_extra=UPLOAD_BODY,
    responses={
        409: {"description": "the incident is closed"},
        413: {"description": "too large"},
        415: {"description": "not an image"},
    },
)
def upload_photo(
    incident_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,  # before the body: who is asking is settled before the upload is read
    settings: SettingsDep,
    data: Annotated[bytes, Depends(read_upload)],
) -> IncidentDetail:
    """The guard who reported the incident (or staff of the site) adds or replaces its photo
    while it is open. Re-encoded as JPEG without EXIF/GPS, with a thumbnail."""
    incident = incident_photos.set_photo(
        session=session, actor=actor, settings=settings, incident_id=incident_id, data=data
    )
    return staff_view.detail_of(session, incident, actor)


@router.get("/{incident_id}/photo", response_class=Response, responses=IMAGE_RESPONSE)
def read_photo(
    incident_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    size: Annotated[str, Query(pattern="^(full|thumbnail)$")] = "full",
    thumbnail: bool = False,
) -> Response:
    """For staff of the site, and for the guard who reported or claimed it while it is open.
    Each read is audited. `?thumbnail=true` (or `?size=thumbnail`) for the small one."""
    data = incident_photos.read_photo(
        session=session,
        actor=actor,
        settings=settings,
        incident_id=incident_id,
        thumbnail=thumbnail or size == "thumbnail",
    )
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@router.get("/{incident_id}/resident", response_model=ResidentForResponder)
def read_resident(
    incident_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> ResidentForResponder:
    """Break-glass: the resident's approach card and household (no phone numbers, no health
    data) for the guard who reported or claimed the incident, while it is open. Audited."""
    return ResidentForResponder.model_validate(
        responders.resident_view(session=session, actor=actor, incident_id=incident_id)
    )


# --- live updates (server-sent events) ---------------------------------------------------------

# A wake-up (this process's commit, or PostgreSQL's NOTIFY from another) makes the stream look
# at once; without one it still looks this often, so a lost signal costs at most this delay.
FALLBACK_POLL_SECONDS = 2.0
HEARTBEAT_SECONDS = 15.0


@dataclass
class _Seen:
    last_event_id: int = 0
    status: dict[str, Any] | None = None
    notifications: list[dict[str, Any]] | None = None


def _sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str, ensure_ascii=False)}\n\n"


def _changes(
    factory: sessionmaker[Session], incident_id: uuid.UUID, seen: _Seen, actor: Actor
) -> list[str]:
    """What changed since `seen` (updated in place), as SSE frames; one short read."""
    frames: list[str] = []
    with factory() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            return [_sse("end", {"reason": "gone"})]
        events = session.exec(
            select(IncidentEvent)
            .where(
                IncidentEvent.incident_id == incident_id,
                col(IncidentEvent.id) > seen.last_event_id,
            )
            .order_by(col(IncidentEvent.id))
        ).all()
        for event in events:
            assert event.id is not None
            seen.last_event_id = event.id
            body = {"id": event.id, "at": event.at.isoformat(), "type": event.type}
            detail = timeline.for_viewer(actor, event.type, event.detail)
            body |= {"actor": event.actor, "detail": detail}
            frames.append(_sse("timeline", body, event.id))
        status_now = staff_view.summary_of(incident).model_dump(mode="json")
        if status_now != seen.status:
            seen.status = status_now
            frames.append(_sse("status", status_now))
        notes = [n.model_dump(mode="json") for n in staff_view.notifications_of(session, incident)]
        if notes != seen.notifications:
            seen.notifications = notes
            frames.append(_sse("notifications", notes))
        if incident.status in CLOSED:
            frames.append(_sse("end", {"reason": incident.status.value}))
    return frames


async def _stream(
    request: Request,
    factory: sessionmaker[Session],
    incident_id: uuid.UUID,
    seen: _Seen,
    max_seconds: float,
    actor: Actor,
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    quiet_since = loop.time()
    with wakeup.incidents.subscribe(incident_id) as changed:
        while True:
            changed.clear()  # before reading, so a commit during the read wakes the next round
            frames = await anyio.to_thread.run_sync(_changes, factory, incident_id, seen, actor)
            for frame in frames:
                yield frame
            if frames:
                quiet_since = loop.time()
                if frames[-1].startswith("event: end"):
                    return
            now = loop.time()
            if now >= deadline or await request.is_disconnected():
                return
            if now - quiet_since >= HEARTBEAT_SECONDS:
                yield ": keep-alive\n\n"
                quiet_since = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    changed.wait(), timeout=min(FALLBACK_POLL_SECONDS, deadline - now)
                )


@router.get(
    "/{incident_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
)
def incident_events(
    incident_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    max_seconds: Annotated[
        float, Query(gt=0, le=3600, description="end the stream after this long; clients reconnect")
    ] = 300,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_EVENT_ID, description="skip events up to this id")
    ] = None,
    last_event_id: Annotated[int | None, Header(ge=0, le=MAX_EVENT_ID)] = None,
) -> StreamingResponse:
    """Server-sent events: `timeline` (each new event, with its id), `status` and
    `notifications` (whenever they change), and `end` when the incident closes. The first
    frames are the current state. A reconnecting EventSource sends `Last-Event-ID` and gets only
    what it missed."""
    incident = incidents.get_incident(session=session, actor=actor, incident_id=incident_id)
    seen = _Seen(last_event_id=last_event_id or after or 0)
    factory: sessionmaker[Session] = request.app.state.read_sessionmaker
    return StreamingResponse(
        _stream(request, factory, incident.id, seen, max_seconds, actor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
