"""Moves due outbox rows to the provider: claim, re-check under lock, render, send, record.

Rendering happens here (welfare never produces provider text): the row names a template and
holds ids; the texts come from notifications/messages.py in the row's language.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from notifications import contact_tests, messages, metrics, routes
from notifications.channels import (
    Accepted,
    CallScript,
    ChannelError,
    ChannelRegistry,
    Notice,
    Outgoing,
    PushTarget,
    Sender,
    Text,
)
from notifications.ratelimit import SenderRateLimit
from welfare import delivery as outbox
from welfare.channels import ChannelKind
from welfare.db import session_scope, utcnow
from welfare.incidents import answer_links
from welfare.incidents import service as incidents
from welfare.incidents.models import Incident
from welfare.incidents.public_reports import incident_map_link
from welfare.outbox import limits
from welfare.outbox.models import ALL_CLEAR, OutboxMessage
from welfare.phones import display_phone
from welfare.push import service as push
from welfare.residents.models import Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.times import zone
from welfare.wakeup import outbox_ready, work_ready

log = logging.getLogger("welfare.dispatcher")
LOOK_SECONDS = 1.0  # the longest a due row waits without a wake-up (retries, deferrals)


class RenderError(Exception):
    """The row asks for a text that does not exist: a bug, not a provider problem."""

    reason = "no message text"  # the words on the timeline


class Unsendable(RenderError):
    """The row's recipient is gone since it was queued (a push subscription removed): the row
    fails in these words, and a push falls back to SMS."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def guard_alert_url(settings: Settings, incident_id: uuid.UUID) -> str:
    """The guard's page for a missing-resident alert (sign-in first; the SMS carries no data)."""
    return f"{settings.public_base_url}/guard/alerts/{incident_id}"


def answer_url(settings: Settings, token: str) -> str:
    """The family's answer link (api/pages/answer.py): no sign-in, the token is the key."""
    return f"{settings.public_base_url.rstrip('/')}/r/{token}"


def _answer_link(session: Session, message: OutboxMessage, settings: Settings) -> str:
    """The link this contact's alert SMS carries: the same one in every SMS to them about the
    incident, and in a resend after a crash (welfare/incidents/answer_links.py)."""
    if message.contact_id is None or message.incident_id is None:
        raise RenderError("an alert SMS without a contact")
    token = answer_links.token_for(
        session,
        incident_id=message.incident_id,
        contact_id=message.contact_id,
        secret_key=settings.secret_key,
    )
    if token is None:
        raise RenderError("the contact was removed")
    return answer_url(settings, token)


def _local_when(value: str, site: Site, date_only: bool = False) -> str:
    """An ISO time from the row's params in the site's timezone, for people to read."""
    local = dt.datetime.fromisoformat(value).astimezone(zone(site.timezone))
    return local.strftime("%Y-%m-%d") if date_only else local.strftime("%Y-%m-%d %H:%M")


def _local_clock(value: str, site: Site) -> str:
    """An ISO time from the row's params as the site's wall-clock time ("12:40")."""
    return dt.datetime.fromisoformat(value).astimezone(zone(site.timezone)).strftime("%H:%M")


Content = Text | CallScript | Notice


def render_push(session: Session, message: OutboxMessage, incident: Incident, site: Site) -> Notice:
    """A push row's notification: what the SMS says, without its link (the notification opens
    the page itself), and the photo's thumbnail behind sign-in when there is one."""
    found = push.subscription(session, message.params.get("subscription_id"))
    if found is None:
        raise Unsendable("the phone's push subscription was removed")
    target = PushTarget(found.endpoint, found.p256dh, found.auth)
    if message.template == "missing_alert":
        title, body = messages.push_notice(message.language, "missing_alert", site_name=site.name)
        resident = session.get(Resident, incident.resident_id) if incident.resident_id else None
        image = f"/api/v1/lookup/{resident.id}/photo" if resident and resident.photo_file else None
        return Notice(title, body, f"/guard/alerts/{incident.id}", target, image, str(incident.id))
    if message.template == "manager_escalation":
        title, body = messages.push_notice(
            message.language,
            "manager_escalation",
            site_name=site.name,
            reference=incident.reference,
        )
        image = f"/api/v1/incidents/{incident.id}/photo?size=thumbnail"
        return Notice(
            title,
            body,
            f"/console/incidents/{incident.id}",
            target,
            image if incident.thumbnail_file else None,
            str(incident.id),
        )
    raise RenderError(f"no push notice for template {message.template!r}")


def render_unbound(session: Session, message: OutboxMessage, settings: Settings) -> Content:
    """Rows not about an incident: check-in calls to residents, staff notices (visits and
    consent reviews). Their params hold ids and times only."""
    params = message.params
    try:
        site = session.get(Site, uuid.UUID(params["site_id"]))
    except (KeyError, ValueError) as exc:
        raise RenderError("outbox row without a site") from exc
    if site is None:
        raise RenderError("outbox row without a site")
    lang = message.language
    call = message.kind is ChannelKind.voice
    if message.template == "checkin_call" and call:
        return CallScript(messages.checkin_call_text(lang, site_name=site.name), "checkin")
    if message.template == contact_tests.TEMPLATE:
        content = contact_tests.render(session, message, settings, site)
        if content is None:
            raise RenderError("the contact test's link is gone")
        return content
    base = settings.public_base_url.rstrip("/")
    if message.template == "consent_review" and not call:
        overdue = params.get("stage") == "overdue"
        notice = "consent_unverified" if overdue else "consent_review"
        unverified = int(params.get("unverified_contacts") or 0)
        return Text.rendered(
            messages.staff_notice_sms,
            lang,
            f"{notice}_contacts" if unverified else notice,
            site_name=site.name,
            kind="",
            when=_local_when(params["review_due"], site, date_only=True),
            link=contact_tests.unverified_url(settings)
            if unverified
            else f"{base}/api/v1/residents/{params['resident_id']}/consents",
            count=str(unverified),
        )
    if message.template in VISIT_NOTICES and not call:
        return Text.rendered(
            messages.staff_notice_sms,
            lang,
            message.template,  # type: ignore[arg-type]
            site_name=site.name,
            kind=params.get("kind", ""),
            when=_local_when(params["window_start"], site),
            link=f"{base}/api/v1/visits/{params['visit_id']}",
        )
    raise RenderError(f"no {message.kind.value} text for template {message.template!r}")


VISIT_NOTICES = frozenset(
    {"visit_reminder", "visit_overdue", "visit_missed", "visit_not_home", "visit_concern"}
)


def _sites_for(session: Session, rows: list[tuple[OutboxMessage, Incident | None]]) -> list[Site]:
    """The sites of these rows (their incident's, else the one in their params), one query."""
    ids = {
        incident.site_id if incident else outbox.site_id_of(message) for message, incident in rows
    }
    ids.discard(None)
    if not ids:
        return []
    return list(session.exec(select(Site).where(col(Site.id).in_(list(ids)))).all())


def render(session: Session, message: OutboxMessage, settings: Settings) -> Content:
    """What this row says: an SMS's text or a call's script, in the row's language."""
    if message.incident_id is None:
        return render_unbound(session, message, settings)
    incident = session.get(Incident, message.incident_id) if message.incident_id else None
    site = session.get(Site, incident.site_id) if incident else None
    if incident is None or site is None:
        raise RenderError("outbox row without an incident")
    office = display_phone(site.office_phone) if site.office_phone else ""
    place = incident.location or site.name
    if message.kind is ChannelKind.push:
        return render_push(session, message, incident, site)
    lang = message.language
    call = message.kind is ChannelKind.voice
    if message.template == "found_alert":
        if call:
            text = messages.found_call_text(lang, site_name=site.name, location=place)
            return CallScript(text, "found", detect_machine=True)
        finder_map = incident_map_link(incident) if incident.public_finder else None
        if finder_map is not None:
            return Text.rendered(
                messages.found_by_finder_sms,
                lang,
                site_name=site.name,
                office_phone=office,
                reference=incident.reference,
                link=_answer_link(session, message, settings),
                map_link=finder_map,
            )
        return Text.rendered(
            messages.found_sms,
            lang,
            site_name=site.name,
            location=place,
            office_phone=office,
            reference=incident.reference,
            link=_answer_link(session, message, settings),
        )
    if message.template == "welfare_concern_alert":
        if call:
            text = messages.welfare_concern_call_text(lang, site_name=site.name)
            return CallScript(text, "concern", detect_machine=True)
        return Text.rendered(
            messages.welfare_concern_sms,
            lang,
            site_name=site.name,
            office_phone=office,
            reference=incident.reference,
            link=_answer_link(session, message, settings),
        )
    if message.template == "manager_escalation":
        if call:
            text = messages.manager_escalation_call_text(
                lang, site_name=site.name, reference=incident.reference
            )
            return CallScript(text, "found", detect_machine=True)
        return Text.rendered(
            messages.manager_escalation_sms, lang, site_name=site.name, reference=incident.reference
        )
    if message.template == "missing_alert" and not call:
        link = guard_alert_url(settings, incident.id)
        return Text.rendered(messages.missing_alert_sms, lang, site_name=site.name, link=link)
    if message.template == "finder_alert" and not call:
        link = guard_alert_url(settings, incident.id)
        return Text.rendered(messages.finder_alert_sms, lang, site_name=site.name, link=link)
    if message.template == "coming_notice" and not call:
        relationship = message.params.get("relationship")
        return Text.rendered(
            messages.coming_notice_sms,
            lang,
            relationship=relationship,
            reference=incident.reference,
        )
    if message.template == ALL_CLEAR and not call:
        at = message.params.get("at")
        return Text.rendered(
            messages.all_clear_sms,
            lang,
            "safe" if message.params.get("wording") == "safe" else "closed",
            site_name=site.name,
            reference=incident.reference,
            office_phone=office,
            at=_local_clock(at, site) if at else "",
        )
    raise RenderError(f"no {message.kind.value} text for template {message.template!r}")


class Dispatcher:
    """Hands due rows to the sender of their channel kind, up to `concurrency` at once (1: one
    by one, in order), within each sender's rate limit. It knows no provider: it renders a
    neutral `Text` or `CallScript` and the registry's sender does the rest."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        channels: ChannelRegistry | Sender,
        settings: Settings,
        *,
        concurrency: int = 1,
        rate_limit: SenderRateLimit | None = None,
    ) -> None:
        self.factory = factory
        # One sender for every kind is the common case (Twilio, the console, a test's fake).
        self.channels = (
            channels
            if isinstance(channels, ChannelRegistry)
            else ChannelRegistry.every_kind(channels)
        )
        self.settings = settings
        self.concurrency = concurrency
        self.rate_limit = rate_limit or SenderRateLimit(settings.outbox_max_per_second)
        self.limits = limits.RecipientLimits.from_settings(settings)
        self._pool: ThreadPoolExecutor | None = None
        self._slots_lock = threading.Lock()
        self._in_flight = 0
        self._more_due = False  # the last look filled every free slot
        self._look_at = 0.0  # monotonic time of the next look without a wake-up
        self._outcomes: queue.SimpleQueue[tuple[OutboxMessage, Accepted | ChannelError]] = (
            queue.SimpleQueue()
        )

    def run_once(self, limit: int | None = None, now: dt.datetime | None = None) -> int:
        """Claim and deliver one batch; return how many rows were sent or tried (rows held back
        by the rate limit do not count, so a caller looping until 0 stops when only they are
        left). `now` is for tests that drive the escalation with their own clock."""
        limit = limit or max(20, self.concurrency)
        with session_scope(self.factory) as session:
            claims = outbox.claim_due(session, limit=limit, now=now)
        deliver = partial(self.deliver, now=now)
        if self.concurrency > 1 and len(claims) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="dispatch")
            # Every row is attempted; the first error (a bug, not a provider failure) is raised.
            return sum(self._pool.map(deliver, claims))
        return sum(deliver(claim) for claim in claims)

    def pump(self) -> int:
        """The worker loop's round: claim as many due rows as there are free send slots, pass
        them all through the gate in one transaction, hand them to the pool and return at once.
        Unlike `run_once`, a slow provider answer never holds back the rows that fall due
        meanwhile (the next found report's first SMS); each finished send wakes the worker,
        which records the outcomes that came back meanwhile, all in one transaction, and fills
        the free slots again when there may be rows for them (`_worth_a_look`). Returns how
        many rows it recorded and claimed (0: nothing to do until the next wake-up)."""
        recorded = self.record_outcomes()
        with self._slots_lock:
            free = self.concurrency - self._in_flight
        if free <= 0 or not self._worth_a_look():
            return recorded
        outbox_ready.clear()  # before the look: a commit after it sets it again
        with session_scope(self.factory) as session:
            claims = outbox.claim_due(session, limit=free)
        self._more_due = len(claims) == free
        self._look_at = time.monotonic() + LOOK_SECONDS
        if not claims:
            return recorded
        with session_scope(self.factory) as session:
            ready, _ = self._gate(session, claims, None)
        if ready and self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="dispatch")
        with self._slots_lock:
            self._in_flight += len(ready)
        for message, content in ready:
            assert self._pool is not None
            self._pool.submit(self._hand_over_in_slot, message, content)
        return recorded + len(claims)

    def _worth_a_look(self) -> bool:
        """Whether a round should look for due rows (each look is a write transaction, on
        SQLite in the one writer's queue): when rows were queued, when the last look filled
        every free slot, or when the time for the next look has come (retries, rows put back
        by the rate limit). Not for each send that comes back."""
        return outbox_ready.is_set() or self._more_due or time.monotonic() >= self._look_at

    def _hand_over_in_slot(self, message: OutboxMessage, content: Content) -> None:
        """A pool thread: the provider call only. The outcome waits for the worker to record
        it (a crash before then leaves the row 'sending', its attempt counted: the stale-claim
        rule resends it, or a stop records it as possibly sent)."""
        try:
            self._outcomes.put((message, self._call_provider(message, content)))
        except Exception:
            log.exception("handing outbox row %s over failed", message.id)
        finally:
            with self._slots_lock:
                self._in_flight -= 1
            work_ready.set()

    def record_outcomes(self) -> int:
        """Record every provider answer that came back since the last call, in one transaction
        (one per send would make each SMS queue for SQLite's write lock once more)."""
        outcomes = []
        while True:
            try:
                outcomes.append(self._outcomes.get_nowait())
            except queue.Empty:
                break
        if outcomes:
            with session_scope(self.factory) as session:
                self._record(session, outcomes, None)
        return len(outcomes)

    def close(self) -> None:
        """Wait for the sends in flight and record their outcomes (the worker is stopping)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.record_outcomes()

    def deliver(self, claim: outbox.Claim, *, now: dt.datetime | None = None) -> bool:
        """Gate (short transaction), provider call (no transaction), record (short transaction).
        False when the row was held back by the sender's rate limit."""
        with session_scope(self.factory) as session:
            ready, held_back = self._gate(session, [claim], now)
        if held_back:
            return False
        for message, content in ready:
            outcome = self._call_provider(message, content)
            with session_scope(self.factory) as session:
                self._record(session, [(message, outcome)], now)
        return True

    def _gate(
        self, session: Session, claims: list[outbox.Claim], now: dt.datetime | None
    ) -> tuple[list[tuple[OutboxMessage, Content]], bool]:
        """In the caller's transaction: the rows to send now, each with its text, and whether
        any row was put back to wait (the sender's rate limit, or the recipient's allowance).
        Rows no longer ours or wanted, without a text, or held back by a limit per recipient
        (welfare/outbox/limits.py) are settled without a send."""
        ready = []
        held_back = False
        admitted: list[tuple[outbox.Claim, OutboxMessage, Incident | None]] = []
        for claim, opened in zip(claims, outbox.open_sends(session, claims, now=now), strict=True):
            if opened is None:
                continue
            message, incident = opened
            sender = self._sender_for(message)
            wait = self.rate_limit.acquire(sender.rate_key(message.kind)) if sender else 0.0
            if wait > 0:
                metrics.RATE_LIMITED.labels(channel=message.kind.value).inc()
                start = now or utcnow()
                until = start + dt.timedelta(seconds=wait)
                outbox.defer(session, claim, until=until, now=start)
                held_back = True
                self._look_again_in(wait)
                continue
            if sender is not None:
                # Committed with the gate, before the send; set on every row before the first
                # read below flushes them, so each row is updated once.
                message.provider = sender.name
                session.add(message)
            admitted.append((claim, message, incident))
        # The sites the texts name, read once for the round and held here while it renders (the
        # session keeps loaded rows only weakly): an incident's SMS and call share one read.
        _held_sites = _sites_for(
            session, [(message, incident) for _, message, incident in admitted]
        )
        for claim, message, incident in admitted:
            try:
                content = render(session, message, self.settings)
            except RenderError as error:
                level = logging.INFO if isinstance(error, Unsendable) else logging.ERROR
                log.log(level, "outbox row %s cannot be rendered: %s", claim.message_id, error)
                outbox.record_failure(
                    session,
                    message,
                    incident,
                    reason=error.reason,
                    code=None,
                    permanent=True,
                    now=now,
                )
                continue
            body = content.body if isinstance(content, Text) else None
            held = limits.check(session, self.limits, message, body, now=now)
            if held is not None:
                metrics.HELD_BACK.labels(channel=message.kind.value, limit=held.limit).inc()
                outbox.hold_back(session, claim, message, incident, held, now=now)
                if held.until is not None:
                    held_back = True
                    self._look_again_in((held.until - (now or utcnow())).total_seconds())
                continue
            ready.append((message, content))
        return ready, held_back

    def _sender_for(self, message: OutboxMessage) -> Sender | None:
        """A fail-over copy's pinned provider; else the first of the destination's route that
        is registered here; else the kind's default sender."""
        pinned = message.params.get("provider")
        if pinned:
            return self.channels.sender(message.kind, str(pinned))
        if message.to_phone:
            for name in routes.route(self.settings, message.kind, message.to_phone):
                sender = self.channels.sender(message.kind, name)
                if sender is not None:
                    return sender
        return self.channels.sender(message.kind)

    def _look_again_in(self, seconds: float) -> None:
        """A row was put back until then: look for it then, and wake the worker for it."""
        look_at = time.monotonic() + seconds
        if look_at < self._look_at:
            self._look_at = look_at
            timer = threading.Timer(seconds, work_ready.set)
            timer.daemon = True
            timer.start()

    def _call_provider(self, message: OutboxMessage, content: Content) -> Accepted | ChannelError:
        started = time.perf_counter()
        try:
            outcome: Accepted | ChannelError = self._send(message, content)
        except ChannelError as error:
            outcome = error
        metrics.provider_answer(
            message.provider, message.kind.value, outcome, time.perf_counter() - started
        )
        return outcome

    def _record(
        self,
        session: Session,
        outcomes: list[tuple[OutboxMessage, Accepted | ChannelError]],
        now: dt.datetime | None,
    ) -> None:
        """Acceptances all at once; failures one by one (rare, and each may move its
        escalation on)."""
        if any(isinstance(outcome, ChannelError) for _, outcome in outcomes):
            # Each failure locks its incident: take every lock of the round first, in id order,
            # so two workers' rounds never wait on each other in a circle.
            incidents.lock_incidents(session, (m.incident_id for m, _ in outcomes if m.incident_id))
        accepted = []
        for sent, outcome in outcomes:
            if isinstance(outcome, ChannelError):
                continue
            metrics.sent(sent.kind.value)
            accepted.append(
                outbox.Accepted(sent.id, outcome.provider_id, outcome.status, sent.claim_token)
            )
        outbox.record_sent(session, accepted, now=now)
        push.mark_success(
            session,
            (
                str(sent.params.get("subscription_id"))
                for sent, outcome in outcomes
                if sent.kind is ChannelKind.push and not isinstance(outcome, ChannelError)
            ),
            now or utcnow(),
        )
        for sent, outcome in outcomes:
            if not isinstance(outcome, ChannelError):
                continue
            finished = outbox.finish_send(session, sent.id, sent.claim_token)
            if finished is None:
                continue
            message, incident = finished
            metrics.provider_error(message.kind.value, outcome.code, permanent=outcome.permanent)
            if outbox.is_final_failure(message, permanent=outcome.permanent):
                # Before the failure is recorded: the copy keeps the step alive meanwhile.
                routes.carry_on(session, self.settings, message, incident, reason=outcome.reason)
            outbox.record_failure(
                session,
                message,
                incident,
                reason=outcome.reason,
                code=outcome.code,
                permanent=outcome.permanent,
                retry_after=outcome.retry_after,
                now=now,
            )

    def _send(self, message: OutboxMessage, content: Content) -> Accepted:
        if message.to_phone is None:
            # Erased since it was queued (the gate fails such rows; this is its backstop): a
            # permanent failure in words, never an exception that leaves the row 'sending' to
            # be taken up again every STALE_CLAIM, for ever.
            raise ChannelError(outbox.ERASED_NUMBER, permanent=True)
        sender = self.channels.sender(message.kind, message.provider)
        if sender is None:
            raise ChannelError(f"no sender for {message.kind.value}", permanent=True)
        return sender.send(
            Outgoing(
                message_id=message.id,
                kind=message.kind,
                to=message.to_phone,
                language=message.language,
                idempotency_key=message.idempotency_key,
                content=content,
                template=message.template,
            )
        )
