"""Visit completion: of the visits that fell due in a period, how many were completed or missed,
in total, per assignee and per resident."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from welfare.authz import Actor, Permission
from welfare.reports.models import (
    AssigneeCompletion,
    Completion,
    ResidentCompletion,
    VisitCompletion,
)
from welfare.reports.periods import completion_rate, report_range
from welfare.users.models import User
from welfare.visits.models import Visit, VisitStatus
from welfare.visits.service import visit_filters

# A visit's window ends after it starts, on the same local day (welfare/visits/service.py), so
# it is shorter than two days even across a change of clocks.
MAX_WINDOW = dt.timedelta(days=2)


def visit_completion(
    *,
    session: Session,
    actor: Actor,
    now: dt.datetime,
    site_id: uuid.UUID | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> VisitCompletion:
    """Visits whose window ended in [start, end): how many were due, completed, missed, per
    assignee (None = the site's staff) and per resident."""
    start, end = report_range(start, end, now, 30)
    until = min(end, now)
    completed = func.sum(case((col(Visit.status) == VisitStatus.completed, 1), else_=0))
    missed = func.sum(case((col(Visit.status) == VisitStatus.missed, 1), else_=0))
    # Counted by the database, a row per assignee and resident, not a row per visit. A window
    # is shorter than MAX_WINDOW, so the bounds on its start (which the site's index holds) only
    # narrow the rows the bounds on its end then pick.
    groups = session.exec(
        select(Visit.assignee_user_id, Visit.resident_id, func.count(), completed, missed)
        .where(
            *visit_filters(actor, site_id=site_id, permission=Permission.reports_read),
            col(Visit.window_start) >= start - MAX_WINDOW,
            col(Visit.window_start) < until,
            col(Visit.window_end) >= start,
            col(Visit.window_end) < until,
        )
        .group_by(col(Visit.assignee_user_id), col(Visit.resident_id))
    ).all()
    by_assignee: dict[uuid.UUID | None, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_resident: dict[uuid.UUID, list[int]] = defaultdict(lambda: [0, 0, 0])
    for assignee, resident, due, done, gone in groups:
        for bucket in (by_assignee[assignee], by_resident[resident]):
            bucket[0] += due
            bucket[1] += done or 0
            bucket[2] += gone or 0
    names = dict(
        session.exec(
            select(User.id, User.display_name).where(
                col(User.id).in_([a for a in by_assignee if a is not None])
            )
        ).all()
    )

    def figures(counts: list[int]) -> dict[str, int | float | None]:
        due, done, missed = counts
        return {"due": due, "completed": done, "missed": missed, "rate": completion_rate(done, due)}

    total = [sum(c[i] for c in by_assignee.values()) for i in range(3)]
    return VisitCompletion(
        start=start,
        end=end,
        site_id=site_id,
        total=Completion.model_validate(figures(total)),
        by_assignee=[
            AssigneeCompletion.model_validate(
                {
                    "assignee_user_id": a,
                    "assignee": names.get(a, "site staff") if a else "site staff",
                    **figures(c),
                }
            )
            for a, c in sorted(by_assignee.items(), key=lambda kv: str(kv[0]))
        ],
        by_resident=[
            ResidentCompletion.model_validate({"resident_id": r, **figures(c)})
            for r, c in sorted(by_resident.items(), key=lambda kv: str(kv[0]))
        ],
    )
