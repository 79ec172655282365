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
    (2026-02-30, 25:00, an offset of 24 h or more). Digits past microseconds are truncated."""
    if not isinstance(text, str) or not _SHAPE.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 date-time")
    normal = f"{text[:10]}T{text[11:]}"
    if normal[-1] in "Zz":
        normal = normal[:-1] + "+00:00"
    return datetime.fromisoformat(normal)


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
