"""Poison isolation: one record whose processing raises something unexpected must not stop the batch.

`PoisonIsolator.run(records, process)` calls `process(records)` (the scoring pipeline, one outcome per
record, in order). When it raises anything other than a `TransientError`:

1. the batch is split in two halves, each processed on its own, recursively, until the failing
   records are alone (bisection: a batch of n with one culprit costs about 2 log2(n) extra calls);
2. a lone record that fails unexpectedly is tried again, up to `max_attempts` failures in all, and
   then replaced by `poisoned(record, exc)` (the worker's: a dead letter with code `internal_error`);
3. the outcomes are returned in input order, one per record.

A `TransientError` (an outage of shared infrastructure) is never counted against a record: it escapes
at once, whichever part of the batch was being processed, so the caller retries the whole batch with
backoff exactly as before. Cancellation and other `BaseException`s escape as well.

Attempts are counted per record identity (`key`, the worker's topic/partition/offset) in memory, so
they survive a transient retry of the batch within this process but not a restart of the process.

Pure: no broker, no clock but `asyncio.sleep`; the worker wires it in (`rci.streams.worker`).
Records that were split apart are scored in smaller batches, so an earlier video of the same batch
that fell in the other half is not an in-batch candidate for them (it is indexed only after the batch).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from rci.core.errors import TransientError
from rci.core.logs import get_logger

R = TypeVar("R")
O = TypeVar("O")  # noqa: E741
log = get_logger(__name__)

Process = Callable[[Sequence[R]], Awaitable[list[O]]]


class AttemptLedger:
    """Unexpected failures per record identity, in memory (bounded: the oldest entries go first)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._failures: OrderedDict[Hashable, int] = OrderedDict()
        self._max_entries = max_entries

    def failed(self, key: Hashable) -> int:
        """Count one more failure of `key`; -> its failures so far."""
        count = self._failures.pop(key, 0) + 1
        self._failures[key] = count
        while len(self._failures) > self._max_entries:
            self._failures.popitem(last=False)
        return count

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    def __len__(self) -> int:
        return len(self._failures)


class PoisonIsolator(Generic[R, O]):
    """Bisects a failing batch down to its culprits; see the module docstring."""

    def __init__(
        self,
        *,
        key: Callable[[R], Hashable],
        poisoned: Callable[[R, Exception, int], O],
        max_attempts: int = 3,
        retry_delay_s: float = 0.0,
        on_poison: Callable[[R, Exception], None] | None = None,
        ledger: AttemptLedger | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self._key = key
        self._poisoned = poisoned
        self.max_attempts = max_attempts
        self._retry_delay_s = retry_delay_s
        self._on_poison = on_poison
        self.ledger = ledger or AttemptLedger()

    async def run(self, records: Sequence[R], process: Process) -> list[O]:
        """One outcome per record, in order; TransientError escapes (retry the whole batch)."""
        records = list(records)
        if not records:
            return []
        try:
            outcomes = await process(records)
        except TransientError:
            raise
        except Exception as exc:
            if len(records) == 1:
                return [await self._lone(records[0], exc, process)]
            log.warning("unexpected error in a batch: splitting it to find the record", size=len(records),
                        error=describe_exception(exc))  # fmt: skip
            mid = len(records) // 2
            left = await self.run(records[:mid], process)
            right = await self.run(records[mid:], process)
            return left + right
        if len(outcomes) != len(records):  # a broken `process`, not a record: let it stop the worker
            raise RuntimeError(f"process returned {len(outcomes)} outcomes for {len(records)} records")
        if len(self.ledger):
            for record in records:
                self.ledger.forget(self._key(record))
        return outcomes

    async def _lone(self, record: R, exc: Exception, process: Process) -> O:
        """A record that failed alone: try again until it succeeds or has failed max_attempts times."""
        key = self._key(record)
        while True:
            attempts = self.ledger.failed(key)
            if attempts >= self.max_attempts:
                self.ledger.forget(key)
                log.error("poison record isolated: giving up on it", record=repr(key), attempts=attempts,
                          error=describe_exception(exc))  # fmt: skip
                if self._on_poison:
                    self._on_poison(record, exc)
                return self._poisoned(record, exc, attempts)
            log.warning("unexpected error on a lone record, trying it again", record=repr(key), attempts=attempts,
                        max_attempts=self.max_attempts, error=describe_exception(exc))  # fmt: skip
            if self._retry_delay_s:
                await asyncio.sleep(self._retry_delay_s * 2 ** (attempts - 1))
            try:
                outcomes = await process([record])
            except TransientError:
                raise
            except Exception as again:
                exc = again
                continue
            self.ledger.forget(key)
            if len(outcomes) != 1:
                raise RuntimeError(f"process returned {len(outcomes)} outcomes for 1 record")
            return outcomes[0]


def describe_exception(exc: BaseException) -> str:
    """`OverflowError: date value out of range`: the class (with its module unless builtin) and message."""
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    message = str(exc)
    return f"{name}: {message}" if message else name

