"""External anchors for the audit chain.

The hash chain shows an edit in the middle, but not a cut at the end (delete the newest entries)
nor a full rewrite (recompute every hash): someone with write access to the database can do
either and the chain still verifies. An anchor is the chain's head (entry count, last id, last
hash, time) signed with HMAC-SHA256 under `WELFARE_SECRET_KEY`, written somewhere the database's
writers cannot reach: an append-only file, a log shipper, a ticket. `verify_anchors` then checks
that the chain still holds every anchored head: the same entry, with the same hash, at the same
position. An anchor line holds ids and hashes only, never personal data, so it can go to logs.

The worker anchors the head at least every minute while the chain grows, and at shutdown
(`anchor_if_moved`): the `audit_head` row `ANCHORED_ROW_ID` remembers the newest head anchored,
under a row lock, so several workers anchor each head once and an idle chain is not anchored
again. That row is bookkeeping for the workers; verification never reads it.

Each anchor is one JSON object on one line, tagged with `"type": "welfare.audit.head"`. Reading
skips lines without that tag and anything before the `{` on a tagged line (a log prefix), so a
worker's log can be checked as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from welfare.audit.models import AuditEntry, AuditHead
from welfare.audit.service import GENESIS_HASH, verify_chain
from welfare.db import upsert as db_upsert
from welfare.db import utcnow

ANCHOR_TYPE = "welfare.audit.head"
_FIELDS = ("type", "count", "last_id", "last_hash", "at")
# The audit_head row holding the hash of the newest head a worker anchored (row 1 is the chain's
# own head, which the appenders lock; this one only the anchoring locks).
ANCHORED_ROW_ID = 2
_ANCHORED_FOR_UPDATE = (
    select(AuditHead.hash).where(AuditHead.id == ANCHORED_ROW_ID).with_for_update()
)
_NEWEST_HASH = select(AuditEntry.hash).order_by(col(AuditEntry.id).desc()).limit(1)


@dataclass(frozen=True)
class Head:
    count: int
    last_id: int | None
    last_hash: str
    at: dt.datetime


def current_head(session: Session) -> Head:
    """The chain's newest entry and how many entries it has, read in one statement (one
    snapshot). Appenders hold a lock until they commit, so ids are committed in order."""
    total = select(func.count(col(AuditEntry.id))).scalar_subquery()
    row = session.exec(
        select(AuditEntry.id, AuditEntry.hash, total).order_by(col(AuditEntry.id).desc()).limit(1)
    ).first()
    if row is None:
        return Head(count=0, last_id=None, last_hash=GENESIS_HASH, at=utcnow())
    last_id, last_hash, count = row
    return Head(count=count, last_id=last_id, last_hash=last_hash, at=utcnow())


def anchor_if_moved(session: Session, key: str) -> str | None:
    """The signed line of the chain's head when entries were added since the last anchor (by
    any worker), recorded as anchored in the caller's transaction; None when nothing changed
    (or the chain is empty: nothing to lose). The caller ships the line (logs it) once this
    transaction has committed.

    The anchored row is locked first (`FOR UPDATE` on PostgreSQL; SQLite's BEGIN IMMEDIATE
    serialises anyway), and the head is read after the lock: a second worker waits, then reads
    the head the first one anchored and finds nothing new, so no head is anchored twice. The
    entry count (a scan) is read only when the newest entry moved."""
    connection = session.connection()
    anchored = connection.execute(_ANCHORED_FOR_UPDATE).scalar()
    if anchored is None:  # the first anchoring; two at once queue on the key, one inserts
        insert = db_upsert(connection)
        connection.execute(
            insert(AuditHead)
            .values(id=ANCHORED_ROW_ID, hash=GENESIS_HASH)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        anchored = connection.execute(_ANCHORED_FOR_UPDATE).scalar_one()
    newest = connection.execute(_NEWEST_HASH).scalar()
    if newest is None or newest == anchored:
        return None
    head = current_head(session)
    connection.execute(
        update(AuditHead).where(col(AuditHead.id) == ANCHORED_ROW_ID).values(hash=head.last_hash)
    )
    return anchor_line(head, key)


def _signature(payload: dict[str, Any], key: str) -> str:
    canonical = json.dumps({k: payload[k] for k in _FIELDS}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def anchor_line(head: Head, key: str) -> str:
    """The head as one signed JSON line."""
    payload: dict[str, Any] = {
        "type": ANCHOR_TYPE,
        "count": head.count,
        "last_id": head.last_id,
        "last_hash": head.last_hash,
        "at": head.at.astimezone(dt.UTC).isoformat(timespec="seconds"),
    }
    payload["hmac"] = _signature(payload, key)
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class AnchorProblem:
    line: int  # 1-based line of the anchor file
    reason: str


@dataclass(frozen=True)
class AnchorReport:
    anchors: int
    chain_entries: int
    problems: list[AnchorProblem]
    # Entries after the newest anchored head: no anchor protects them yet (a cut there would
    # not show). All of them when the file anchors nothing.
    unanchored: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _parse(text: str, key: str) -> tuple[list[tuple[int, dict[str, Any]]], list[AnchorProblem]]:
    anchors: list[tuple[int, dict[str, Any]]] = []
    problems: list[AnchorProblem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if ANCHOR_TYPE not in line:
            continue
        try:
            record = json.loads(line[line.index("{") :])
            if not isinstance(record, dict) or record.get("type") != ANCHOR_TYPE:
                raise ValueError
            count, last_id, last_hash = record["count"], record["last_id"], record["last_hash"]
            if not (
                isinstance(count, int)
                and (last_id is None or isinstance(last_id, int))
                and isinstance(last_hash, str)
                and isinstance(record["at"], str)
                and isinstance(record["hmac"], str)
            ):
                raise ValueError
        except (ValueError, KeyError):
            problems.append(AnchorProblem(number, "not a readable anchor"))
            continue
        if not hmac.compare_digest(record["hmac"], _signature(record, key)):
            problems.append(
                AnchorProblem(number, "signature does not match (edited, or another secret key)")
            )
            continue
        anchors.append((number, record))
    return anchors, problems


def verify_anchors(session: Session, text: str, key: str) -> AnchorReport:
    """Check every signed head in `text` against the chain: the anchored entry must still be
    there (else the chain was cut), with the anchored hash (else rewritten), with exactly
    `count` entries up to it (else entries before it were removed or added). The chain itself
    is walked too: an anchor proves nothing about a chain that does not verify."""
    anchors, problems = _parse(text, key)
    if not anchors and not problems:
        problems.append(AnchorProblem(0, "no audit anchors in the file"))
    watched = {record["last_id"] for _, record in anchors if record["last_id"] is not None}
    chain = verify_chain(session, watch=watched)
    if not chain.ok:
        problems.append(
            AnchorProblem(
                0, f"the chain itself is broken at entry {chain.first_broken_id}: {chain.reason}"
            )
        )
    for number, record in anchors:
        last_id = record["last_id"]
        if last_id is None:
            continue  # anchored an empty chain: nothing to lose
        seen = chain.watched.get(last_id)
        if seen is None:
            if chain.ok:
                reason = (
                    f"entry {last_id} (anchored {record['at']}) is gone: "
                    f"the chain was cut to {chain.checked} entries"
                )
            else:
                reason = f"entry {last_id} (anchored {record['at']}) is not in the intact part"
            problems.append(AnchorProblem(number, reason))
            continue
        position, entry_hash = seen
        if entry_hash != record["last_hash"]:
            problems.append(
                AnchorProblem(
                    number,
                    f"entry {last_id} has another hash than anchored {record['at']}: "
                    "the chain was rewritten",
                )
            )
        elif position != record["count"]:
            problems.append(
                AnchorProblem(
                    number,
                    f"{position} entries up to entry {last_id}, {record['count']} anchored "
                    f"{record['at']}: entries before it were removed or added",
                )
            )
    problems.sort(key=lambda p: p.line)
    newest = max((record["count"] for _, record in anchors), default=0)
    return AnchorReport(
        anchors=len(anchors),
        chain_entries=chain.checked,
        problems=problems,
        unanchored=max(chain.checked - newest, 0),
    )
