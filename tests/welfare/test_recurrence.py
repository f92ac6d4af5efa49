"""Expanding a schedule's rule from a start moved near the range gives exactly what dateutil
gives walking from the schedule's own start."""

from __future__ import annotations

import datetime as dt

from dateutil.rrule import rrulestr
from hypothesis import example, given, settings
from hypothesis import strategies as st

from welfare.visits import recurrence

RULES = st.sampled_from(
    [
        "FREQ=DAILY",
        "FREQ=DAILY;INTERVAL=3",
        "FREQ=WEEKLY",
        "FREQ=WEEKLY;BYDAY=MO,TH",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE",
        "FREQ=WEEKLY;INTERVAL=3;BYDAY=SU,SA;WKST=SU",
        "FREQ=MONTHLY",
        "FREQ=MONTHLY;INTERVAL=2",
        "FREQ=MONTHLY;BYMONTHDAY=1,15",
        "FREQ=MONTHLY;BYMONTHDAY=-1",
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=YEARLY",
        "FREQ=YEARLY;INTERVAL=2;BYMONTH=3;BYDAY=2SU",
        "FREQ=DAILY;COUNT=40",
        "FREQ=WEEKLY;BYDAY=TU;COUNT=12",
    ]
)


def _valid(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


# Starts on the 29th-31st and on 29 February, which shifting by months or years would move.
MONTH_ENDS = st.builds(
    _valid,
    st.integers(min_value=2020, max_value=2026),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=28, max_value=31),
).filter(lambda day: day is not None)


@settings(max_examples=300, deadline=None)
# A start on the 31st moved by one month would land on the 28th; 29 February by a year, on
# the 28th; a COUNT moved forward would count past its end.
@example("FREQ=MONTHLY", dt.date(2026, 1, 31), 9, 40, 60, "Asia/Hong_Kong")
@example("FREQ=YEARLY", dt.date(2020, 2, 29), 9, 3 * 365, 400, "Europe/London")
@example("FREQ=DAILY;COUNT=40", dt.date(2026, 1, 1), 9, 35, 30, "America/New_York")
@given(
    rule=RULES,
    start=st.one_of(
        st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2026, 12, 31)), MONTH_ENDS
    ),
    hour=st.integers(min_value=0, max_value=22),
    after_days=st.integers(min_value=-30, max_value=3 * 365),
    span_days=st.integers(min_value=1, max_value=90),
    timezone=st.sampled_from(["Asia/Hong_Kong", "America/New_York", "Europe/London"]),
)
def test_occurrences_equal_the_walk_from_the_schedules_own_start(
    rule: str, start: dt.date, hour: int, after_days: int, span_days: int, timezone: str
) -> None:
    window_start, window_end = dt.time(hour), dt.time(hour + 1)
    after = dt.datetime.combine(start, dt.time(), dt.UTC) + dt.timedelta(days=after_days)
    before = after + dt.timedelta(days=span_days)
    found = recurrence.occurrences(
        rule=rule,
        timezone=timezone,
        start_date=start,
        end_date=None,
        window_start=window_start,
        window_end=window_end,
        after=after,
        before=before,
    )
    tz = recurrence.zone(timezone)
    walked = rrulestr(rule, dtstart=dt.datetime.combine(start, window_start))
    expected = [
        (s, recurrence.to_utc(local + dt.timedelta(hours=1), tz))
        for local in walked.between(
            after.astimezone(tz).replace(tzinfo=None) - dt.timedelta(days=1),
            before.astimezone(tz).replace(tzinfo=None) + dt.timedelta(days=1),
            inc=True,
        )
        if after <= (s := recurrence.to_utc(local, tz)) < before
    ]
    assert found == expected
