"""Pure helpers for the manager pages: calendar grids in a site's timezone, the RRULE builder,
and server-side SVG charts (no inline style: presentation attributes and manager.css classes)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from api.pages.i18n import N_

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
WEEKDAY_NAMES = (
    N_("Monday"),
    N_("Tuesday"),
    N_("Wednesday"),
    N_("Thursday"),
    N_("Friday"),
    N_("Saturday"),
    N_("Sunday"),
)
WEEKDAY_SHORT = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))


# --- calendar -----------------------------------------------------------------------------------


def local_midnight_utc(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant of local midnight starting `day` (correct across daylight-saving days)."""
    return dt.datetime.combine(day, dt.time()).replace(tzinfo=tz).astimezone(dt.UTC)


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def week_range(day: dt.date) -> tuple[dt.date, dt.date]:
    """Monday of `day`'s week and the Monday after (local dates)."""
    first = week_start(day)
    return first, first + dt.timedelta(days=7)


def month_range(day: dt.date) -> tuple[dt.date, dt.date]:
    """The Monday on or before the 1st and the Monday after the month's last week."""
    first_of_month = day.replace(day=1)
    next_month = (first_of_month + dt.timedelta(days=32)).replace(day=1)
    last = next_month - dt.timedelta(days=1)
    return week_start(first_of_month), week_start(last) + dt.timedelta(days=7)


def shift_month(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass
class Day:
    date: dt.date
    in_month: bool = True
    is_today: bool = False
    entries: list[Any] = field(default_factory=list)


def group_by_local_day(
    first: dt.date, last: dt.date, items: list[Any], tz: ZoneInfo, today: dt.date, month: int
) -> list[Day]:
    """Days [first, last) with the items whose `window_start` falls on them in `tz`."""
    days = {
        first + dt.timedelta(days=i): Day(first + dt.timedelta(days=i))
        for i in range((last - first).days)
    }
    for day in days.values():
        day.in_month = day.date.month == month
        day.is_today = day.date == today
    for item in items:
        local = item.window_start.astimezone(tz).date()
        if local in days:
            days[local].entries.append(item)
    return list(days.values())


# --- RRULE builder ------------------------------------------------------------------------------

PRESETS = ("weekly", "every_n_days", "monthly", "raw")


class RuleError(ValueError):
    """A builder input that makes no rule; the message is a UI string (translated when shown)."""


@dataclass
class RuleForm:
    preset: str = "weekly"
    weekdays: list[str] = field(default_factory=list)
    every_days: str = "1"
    month_day: str = "1"
    raw: str = ""


def build_rule(form: RuleForm) -> str:
    """The RRULE the builder's fields describe (validated again by the service)."""
    if form.preset == "weekly":
        days = [d for d in WEEKDAYS if d in form.weekdays]
        if not days or len(days) != len(set(form.weekdays)):
            raise RuleError(N_("Choose at least one day of the week."))
        return "FREQ=WEEKLY;BYDAY=" + ",".join(days)
    if form.preset == "every_n_days":
        if not form.every_days.strip().isdigit() or not 1 <= int(form.every_days) <= 365:
            raise RuleError(N_("Give a number of days from 1 to 365."))
        interval = int(form.every_days)
        return "FREQ=DAILY" if interval == 1 else f"FREQ=DAILY;INTERVAL={interval}"
    if form.preset == "monthly":
        if not form.month_day.strip().isdigit() or not 1 <= int(form.month_day) <= 28:
            raise RuleError(N_("Give a day of the month from 1 to 28."))
        return f"FREQ=MONTHLY;BYMONTHDAY={int(form.month_day)}"
    if form.preset == "raw":
        if not form.raw.strip():
            raise RuleError(N_("Write a recurrence rule, e.g. FREQ=WEEKLY;BYDAY=MO,TH."))
        return form.raw.strip()
    raise RuleError(N_("Choose how the visit repeats."))


_DAY = "(?:MO|TU|WE|TH|FR|SA|SU)"
_WEEKLY = re.compile(rf"^FREQ=WEEKLY;BYDAY=({_DAY}(?:,{_DAY})*)$")
_DAILY = re.compile(r"^FREQ=DAILY(?:;INTERVAL=(\d+))?$")
_MONTHLY = re.compile(r"^FREQ=MONTHLY;BYMONTHDAY=(\d+)$")


def parse_rule(rule: str) -> RuleForm:
    """The builder fields for a stored rule; anything the presets cannot say goes to raw."""
    if found := _WEEKLY.match(rule):
        return RuleForm(preset="weekly", weekdays=found.group(1).split(","), raw=rule)
    if found := _DAILY.match(rule):
        return RuleForm(preset="every_n_days", every_days=found.group(1) or "1", raw=rule)
    if (found := _MONTHLY.match(rule)) and 1 <= int(found.group(1)) <= 28:
        return RuleForm(preset="monthly", month_day=found.group(1), raw=rule)
    return RuleForm(preset="raw", raw=rule)


# --- SVG charts ---------------------------------------------------------------------------------


@dataclass
class Bar:
    label: str
    value: float | None  # 0..1 for rates
    text: str  # the figure printed at the bar's end
    y: float = 0
    width: float = 0


@dataclass
class BarChart:
    """Horizontal bars, one per row: fits a narrow screen and long names."""

    bars: list[Bar]
    width: int = 320
    label_width: int = 100
    row_height: int = 30
    height: int = 0
    plot_width: int = 0
    ticks: list[tuple[float, str]] = field(default_factory=list)


LABEL_CHARS = 13


def bar_chart(rows: list[tuple[str, float | None, str]], width: int = 320) -> BarChart:
    chart = BarChart(bars=[], width=width)
    chart.plot_width = width - chart.label_width - 50
    for index, (label, value, text) in enumerate(rows):
        # A long name is cut with an ellipsis; the table beside the chart has it whole.
        short = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "\u2026"
        bar = Bar(label=short, value=value, text=text)
        bar.y = 10 + index * chart.row_height
        bar.width = round(max(value or 0.0, 0.0) * chart.plot_width, 1)
        chart.bars.append(bar)
    chart.height = 10 + len(rows) * chart.row_height + 24
    chart.ticks = [(round(f * chart.plot_width, 1), f"{int(f * 100)}%") for f in (0, 0.5, 1)]
    return chart


@dataclass
class Series:
    name: str
    css: str  # class from manager.css (stroke and fill colours)
    points: list[tuple[float, float, str]] = field(default_factory=list)  # x, y, label
    path: str = ""


@dataclass
class LineChart:
    width: int
    height: int
    left: int
    bottom: int
    series: list[Series]
    x_labels: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    empty: bool


def nice_max(value: float) -> float:
    """A round axis top at or above `value`."""
    if value <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 240, 480, 960, 1440, 2880, 10080):
        if value <= step:
            return float(step)
    return float(int(value) + 1)


def line_chart(
    months: list[str], series: list[tuple[str, str, list[float | None]]], width: int = 320
) -> LineChart:
    """Lines over months; values in minutes (None: no incident reached that step)."""
    height, left, right, top, bottom = 200, 50, 24, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _n, _c, vs in series for v in vs if v is not None]
    top_value = nice_max(max(values, default=0.0))
    count = max(len(months), 1)

    def x_at(i: int) -> float:
        return round(left + (plot_w * (i + 0.5) / count), 1)

    def y_at(v: float) -> float:
        return round(top + plot_h - plot_h * v / top_value, 1)

    out: list[Series] = []
    for name, css, vs in series:
        line = Series(name=name, css=css)
        for i, v in enumerate(vs):
            if v is not None:
                line.points.append((x_at(i), y_at(v), format_minutes(v)))
        line.path = " ".join(
            f"{'M' if j == 0 else 'L'}{x},{y}" for j, (x, y, _l) in enumerate(line.points)
        )
        out.append(line)
    return LineChart(
        width=width,
        height=height,
        left=left,
        bottom=height - bottom,
        series=out,
        # At most about four month labels fit a phone-wide chart: label every step-th one.
        x_labels=[
            (x_at(i), m)
            for i, m in enumerate(months)
            if i % max(1, -(-len(months) // 4)) == 0 or i == len(months) - 1
        ],
        y_ticks=[
            (y_at(top_value * f), format_minutes(top_value * f) if f else "0") for f in (0, 0.5, 1)
        ],
        empty=not values,
    )


NO_VALUE = "\u2013"  # an en dash: no figure


def format_minutes(minutes: float | None) -> str:
    if minutes is None:
        return NO_VALUE
    if minutes < 1:
        return f"{round(minutes * 60)} s"
    if minutes < 120:
        return f"{minutes:.1f} min" if minutes < 10 else f"{round(minutes)} min"
    return f"{minutes / 60:.1f} h"


def percent(rate: float | None) -> str:
    return NO_VALUE if rate is None else f"{round(rate * 100)}%"
