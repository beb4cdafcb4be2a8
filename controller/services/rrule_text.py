"""Any schedule's RRULE said in plain words, Vietnamese first, for people who never read RFC 5545.

"FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR,SA;BYHOUR=5,17;BYMINUTE=0,30;BYSETPOS=2,3"
-> "Hằng ngày lúc 05:30 và 17:00, trừ Chủ nhật". The panel's recurrence builder writes
rules in that shape (times of day as BYHOUR x BYMINUTE narrowed by BYSETPOS, because one
RRULE can not otherwise hold 05:30 *and* 17:00), and `build` is that writer, so the
description and the builder always agree. Rules the builder never writes are still
described as far as their parts allow; nothing here raises on a rule the service accepts.

An end is said when the rule has one (UNTIL, COUNT, or the schedule's own `until`); a rule
repeating several times a day with no end says so ("cho đến khi hủy"), because that is
what an emergency repeat or an hourly bulletin means to the person confirming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from itertools import product

DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
DAY_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")
DAY_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
            "October", "November", "December")  # fmt: skip


@dataclass
class Parts:
    """The parts of one RRULE that matter to a person."""

    freq: str = "DAILY"
    interval: int = 1
    days: list[int] = field(default_factory=list)  # 0 = Monday
    hours: list[int] = field(default_factory=list)
    minutes: list[int] = field(default_factory=list)
    seconds: list[int] = field(default_factory=list)
    setpos: list[int] = field(default_factory=list)
    monthdays: list[int] = field(default_factory=list)
    count: int | None = None
    until: datetime | None = None


def _ints(value: str) -> list[int]:
    out = []
    for v in value.split(","):
        try:
            out.append(int(v))
        except ValueError:
            continue
    return out


def parse(rule: str) -> Parts:
    body = rule.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    p = Parts()
    for piece in body.split(";"):
        key, _, value = piece.partition("=")
        key, value = key.strip().upper(), value.strip().upper()
        if key == "FREQ":
            p.freq = value
        elif key == "INTERVAL":
            p.interval = max(1, (_ints(value) or [1])[0])
        elif key == "BYDAY":
            p.days = sorted({DAYS.index(d[-2:]) for d in value.split(",") if d[-2:] in DAYS})
        elif key == "BYHOUR":
            p.hours = sorted(set(_ints(value)))
        elif key == "BYMINUTE":
            p.minutes = sorted(set(_ints(value)))
        elif key == "BYSECOND":
            p.seconds = sorted(set(_ints(value)))
        elif key == "BYSETPOS":
            p.setpos = _ints(value)
        elif key == "BYMONTHDAY":
            p.monthdays = sorted(set(_ints(value)))
        elif key == "COUNT":
            p.count = (_ints(value) or [None])[0]  # type: ignore[list-item]
        elif key == "UNTIL":
            for fmt in ("%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%S", "%Y%m%d"):
                try:
                    p.until = datetime.strptime(value, fmt)
                    break
                except ValueError:
                    continue
    return p


def times_of_day(p: Parts, dtstart: datetime | None = None) -> list[time]:
    """The wall times a day gets: BYHOUR x BYMINUTE x BYSECOND, narrowed by BYSETPOS."""
    hours = p.hours or ([dtstart.hour] if dtstart else [])
    if not hours:
        return []
    minutes = p.minutes or [dtstart.minute if dtstart else 0]
    seconds = p.seconds or [dtstart.second if dtstart else 0]
    every = sorted(time(h, m, s) for h, m, s in product(hours, minutes, seconds))
    if not p.setpos:
        return every
    n = len(every)
    picked = {every[i - 1] if i > 0 else every[n + i] for i in p.setpos if 1 <= abs(i) <= n}
    return sorted(picked)


def clock(t: time) -> str:
    return t.strftime("%H:%M:%S") if t.second else t.strftime("%H:%M")


def _join(items: list[str], lang: str) -> str:
    word = " và " if lang == "vi" else " and "
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + word + items[-1]


def _date(d: date | datetime, lang: str) -> str:
    return d.strftime("%d/%m/%Y")


def describe(
    rule: str,
    *,
    dtstart: datetime | None = None,
    until: datetime | None = None,
    exdates: list[datetime] | None = None,
    lang: str = "vi",
) -> str:
    """The rule (plus the schedule's own until/exdates, local wall times) in one sentence."""
    vi = lang == "vi"
    p = parse(rule)
    names = DAY_VI if vi else DAY_EN
    times = [clock(t) for t in times_of_day(p, dtstart)]
    at = (" lúc " if vi else " at ") + _join(times, lang) if times else ""
    days = p.days if p.days and len(p.days) < 7 else []
    except_days = ""
    if p.freq == "HOURLY":
        head = (
            ("Mỗi giờ" if vi else "Every hour")
            if p.interval == 1
            else (f"{p.interval} giờ một lần" if vi else f"Every {p.interval} hours")
        )
        minute = p.minutes[0] if len(p.minutes) == 1 else None
        if not p.minutes and dtstart is not None:
            minute = dtstart.minute
        if minute == 0:
            head += ", vào đầu giờ" if vi else ", on the hour"
        elif minute is not None:
            head += f", vào phút {minute:02d}" if vi else f", at minute {minute:02d}"
        if p.hours:
            hrs = [f"{h:02d}:00" if minute in (None, 0) else f"{h:02d}:{minute:02d}" for h in p.hours]
            head += (" (lúc " if vi else " (at ") + _join(hrs, lang) + ")"
        at = ""
        if days:
            head += (", vào " if vi else ", on ") + _join([names[d] for d in days], lang)
    elif p.freq == "DAILY" or (p.freq == "WEEKLY" and p.interval == 1 and days):
        if p.freq == "DAILY" and p.interval > 1:
            head = f"{p.interval} ngày một lần" if vi else f"Every {p.interval} days"
        elif not days:
            head = "Hằng ngày" if vi else "Every day"
        elif len(days) >= 5:
            head = "Hằng ngày" if vi else "Every day"
            missing = [names[d] for d in range(7) if d not in days]
            except_days = (", trừ " if vi else ", except ") + _join(missing, lang)
        else:
            head = _join([names[d] for d in days], lang)
        if p.freq == "DAILY" and p.interval > 1 and days:
            head += (", vào " if vi else ", on ") + _join([names[d] for d in days], lang)
    elif p.freq == "WEEKLY":
        weekday = days or ([dtstart.weekday()] if dtstart else [])
        head = (
            ("Hằng tuần" if vi else "Every week")
            if p.interval == 1
            else (f"{p.interval} tuần một lần" if vi else f"Every {p.interval} weeks")
        )
        if weekday:
            head += (", vào " if vi else ", on ") + _join([names[d] for d in weekday], lang)
    elif p.freq == "MONTHLY":
        mdays = p.monthdays or ([dtstart.day] if dtstart else [])
        head = (
            ("Hằng tháng" if vi else "Every month")
            if p.interval == 1
            else (f"{p.interval} tháng một lần" if vi else f"Every {p.interval} months")
        )
        if mdays:
            head += (", ngày " if vi else ", on day ") + _join([str(d) for d in mdays], lang)
    elif p.freq == "YEARLY":
        head = "Hằng năm" if vi else "Every year"
        if dtstart:
            head += f", ngày {dtstart:%d/%m}" if vi else f", on {dtstart.day} {MONTH_EN[dtstart.month - 1]}"
    else:
        head = rule
    text = head + at + except_days
    end = until or p.until
    if p.count:
        text += f", {p.count} lần" if vi else f", {p.count} times"
    elif end is not None:
        text += (", đến hết ngày " if vi else ", until ") + _date(end, lang)
    elif p.freq == "HOURLY":
        text += ", cho đến khi hủy" if vi else ", until cancelled"
    if exdates:
        shown = sorted({_date(e, lang) for e in exdates})
        text += (", không phát các ngày " if vi else ", not on ") + _join(shown, lang)
    return text


# -- the builder ---------------------------------------------------------------------------------
def parse_times(text: str) -> list[time]:
    """'05:30, 17:00' (also 5h30, 17h, 05:30:15) -> sorted wall times; ValueError on anything else."""
    out: set[time] = set()
    for raw in text.replace(";", ",").replace(" ", ",").split(","):
        word = raw.strip().lower().replace("h", ":").replace(".", ":")
        if not word:
            continue
        if word.endswith(":"):
            word += "00"
        bits = word.split(":")
        if len(bits) not in (2, 3) or not all(b.isdigit() for b in bits):
            raise ValueError(raw)
        h, m, s = (int(b) for b in [*bits, "0"][:3])
        out.add(time(h, m, s))  # raises ValueError when out of range
    return sorted(out)


def build(
    *,
    mode: str,
    days: list[int] | None = None,
    times: list[time] | None = None,
    every_hours: int = 1,
    minute: int = 0,
) -> str:
    """The RRULE the panel's builder makes: 'days' (weekdays + times) or 'hours' (every N hours)."""
    if mode == "hours":
        if not 1 <= every_hours <= 24 or not 0 <= minute <= 59:
            raise ValueError("every_hours 1..24, minute 0..59")
        rule = f"FREQ=HOURLY;INTERVAL={every_hours};BYMINUTE={minute};BYSECOND=0"
        if days and len(set(days)) < 7:
            rule += ";BYDAY=" + ",".join(DAYS[d] for d in sorted(set(days)))
        return rule
    if not times:
        raise ValueError("at least one time of day")
    hours = sorted({t.hour for t in times})
    minutes = sorted({t.minute for t in times})
    seconds = sorted({t.second for t in times})
    rule = "FREQ=DAILY"
    if days and len(set(days)) < 7:
        rule += ";BYDAY=" + ",".join(DAYS[d] for d in sorted(set(days)))
    rule += f";BYHOUR={','.join(map(str, hours))};BYMINUTE={','.join(map(str, minutes))}"
    rule += f";BYSECOND={','.join(map(str, seconds))}"
    every = sorted(time(h, m, s) for h, m, s in product(hours, minutes, seconds))
    wanted = sorted(set(times))
    if every != wanted:
        rule += ";BYSETPOS=" + ",".join(str(every.index(t) + 1) for t in wanted)
    return rule
