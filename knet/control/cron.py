"""Cron schedules as the CronJob controller reads them (robfig/cron v3 ``ParseStandard``).

Invariants:
- Five fields (minute hour day-of-month month day-of-week) or a macro (@yearly, @annually,
  @monthly, @weekly, @daily, @midnight, @hourly). ``@every`` and ``TZ=``/``CRON_TZ=``
  prefixes are refused, as the API server's validation refuses them (use ``spec.timeZone``).
- Ranges ``a-b``, steps ``*/n`` and ``a/n`` (= a-max/n), lists, ``?`` for ``*``, month and
  weekday names (case-insensitive), weekday 7 is not accepted (robfig: 0-6).
- Day-of-month and day-of-week: when either field is ``*``/``?`` (not stepped), both must
  match; when both are restricted, either may (robfig's ``dayMatches``, Vixie cron's rule).
- Pure: times are POSIX seconds; the zone (IANA name, default UTC) comes from zoneinfo.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_BOUNDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 6, _DAYS))


class CronError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    dom: frozenset[int]
    months: frozenset[int]
    dow: frozenset[int]
    dom_star: bool
    dow_star: bool

    def matches(self, t: datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours \
                or t.month not in self.months:
            return False
        dom_ok = t.day in self.dom
        dow_ok = (t.isoweekday() % 7) in self.dow
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def next_after(self, t: float, zone: str = "") -> float | None:
        """The first scheduled instant strictly after POSIX time ``t`` (None within 5 years,
        e.g. ``0 0 30 2 *``), computed in ``zone``'s wall clock."""
        tz = _zone(zone)
        local = datetime.fromtimestamp(int(t) // 60 * 60, tz) + timedelta(minutes=1)
        limit = local + timedelta(days=366 * 5)
        while local < limit:
            if local.month not in self.months:
                local = (local.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(
                    day=1)
                continue
            if not self._day_ok(local):
                local = local.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if local.hour not in self.hours:
                local = local.replace(minute=0) + timedelta(hours=1)
                continue
            if local.minute not in self.minutes:
                local += timedelta(minutes=1)
                continue
            return local.timestamp()
        return None

    def _day_ok(self, t: datetime) -> bool:
        dom_ok = t.day in self.dom
        dow_ok = (t.isoweekday() % 7) in self.dow
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok


def _zone(name: str) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise CronError(f"unknown time zone {name}") from e


def check_zone(name: str) -> str | None:
    """The API server's message for a bad ``spec.timeZone`` (None when valid)."""
    if not name:
        return None
    try:
        _zone(name)
    except CronError:
        return f"unknown time zone {name}"
    return None


def parse(spec: str) -> Schedule:
    text = spec.strip()
    if not text:
        raise CronError("empty spec string")
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if text.startswith("@"):
        if text.startswith("@every"):
            raise CronError(f"unrecognized descriptor: {text}")
        if text not in MACROS:
            raise CronError(f"unrecognized descriptor: {text}")
        text = MACROS[text]
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    sets: list[frozenset[int]] = []
    stars: list[bool] = []
    for f, (lo, hi, names) in zip(fields, _BOUNDS):
        values, star = _field(f, lo, hi, names)
        sets.append(values)
        stars.append(star)
    return Schedule(sets[0], sets[1], sets[2], sets[3], sets[4], stars[2], stars[4])


def _field(text: str, lo: int, hi: int, names: dict[str, int]) -> tuple[frozenset[int], bool]:
    out: set[int] = set()
    star = False
    for part in text.split(","):
        step = 1
        rng = part
        stepped = False
        if "/" in part:
            rng, s = part.split("/", 1)
            if not s.isdigit() or int(s) == 0:
                raise CronError(f"failed to parse int from {s}: invalid step")
            step, stepped = int(s), True
        if rng in ("*", "?"):
            start, end = lo, hi
            star = star or step == 1
        else:
            bounds = rng.split("-")
            if len(bounds) > 2:
                raise CronError(f"too many hyphens: {part}")
            start = _value(bounds[0], names)
            end = _value(bounds[1], names) if len(bounds) == 2 else (hi if stepped else start)
        if start < lo:
            raise CronError(f"beginning of range ({start}) below minimum ({lo}): {part}")
        if end > hi:
            raise CronError(f"end of range ({end}) above maximum ({hi}): {part}")
        if start > end:
            raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {part}")
        out.update(range(start, end + 1, step))
    return frozenset(out), star


def _value(text: str, names: dict[str, int]) -> int:
    low = text.lower()
    if low in names:
        return names[low]
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}")
    return int(text)


def most_recent(schedule: Schedule, earliest: float, now: float, zone: str = ""
                ) -> tuple[float | None, int]:
    """(the latest scheduled time in (earliest, now], how many there were), as the
    controller's ``mostRecentScheduleTime`` counts missed starts."""
    t = schedule.next_after(earliest, zone)
    if t is None or t > now:
        return None, 0
    count, last = 0, t
    while t is not None and t <= now:
        count += 1
        last = t
        if count > 100:
            # the controller stops counting here; jump to the latest one directly
            back = schedule.next_after(now - 7 * 86400, zone)
            while back is not None and back <= now:
                last = back
                back = schedule.next_after(back, zone)
            return last, count
        t = schedule.next_after(t, zone)
    return last, count
