"""RFC 3339 timestamps, parsed one way and written one way everywhere.

The contracts accept what RFC 3339 allows (`T` or `t` or a space between date and time, `Z` or
`z` or a numeric offset, any number of fractional digits), and every later step (retrieval's
epoch milliseconds, the in-batch candidate search) must read the same string the same way, or an
event the contract accepted turns into a poison pill one stage later. `datetime.fromisoformat`
alone does not: Python 3.11 refuses a lowercase `z`.

What the project writes (`scored_at`, `failed_at`, generated `published_at`, times read back from
retrieval) is always the one form the contracts' examples use: UTC, milliseconds, a `Z` suffix.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# ASCII digits only: `\d` would also match other scripts' digits in Python and pydantic, but not in
# the JSON Schema (ECMA-262) outside producers validate with.
PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
_SHAPE = re.compile(PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse(text: str) -> datetime:
    """An aware datetime; ValueError if `text` is not an RFC 3339 date-time with an offset, or is impossible
    (2026-02-30, 25:00, an offset of 24 h or more, a UTC value outside years 1-9999). Digits past
    microseconds are truncated."""
    if not isinstance(text, str) or not _SHAPE.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 date-time")
    normal = f"{text[:10]}T{text[11:]}"
    if normal[-1] in "Zz":
        normal = normal[:-1] + "+00:00"
    moment = datetime.fromisoformat(normal)
    # 0001-01-01T00:00:00+23:59 is a valid local time whose UTC value is in year 0. Refused here,
    # where the contract validates, instead of as an OverflowError wherever it is next converted
    # to UTC (format, a store reading it back), which no caller expects.
    try:
        moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"{text!r} falls outside years 1-9999 in UTC") from exc
    return moment


def epoch_ms(text: str) -> int:
    """Integer milliseconds since the epoch (UTC), floor, with no float rounding."""
    return (parse(text) - _EPOCH) // timedelta(milliseconds=1)


def format(moment: datetime) -> str:
    """`moment` as the project writes times: UTC, milliseconds (truncated), `Z`, e.g. 2026-11-22T10:00:00.123Z.
    ValueError for a naive datetime: it names no instant."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no UTC offset")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> str:
    """The current time, written by `format`."""
    return format(datetime.now(UTC))
