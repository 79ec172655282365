"""Poison isolation (rci.streams.isolation), broker-free: a fake `process` that fails on chosen records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from rci.core.errors import TransientError
from rci.streams.isolation import AttemptLedger, PoisonIsolator, describe_exception


class Process:
    """Scores ints as `("ok", n)`; raises `errors[n]` when n is in the batch: an exception, or a list of
    them (None: no error) used in order, its last one for good."""

    def __init__(self, errors: dict[int, Exception | list[Exception]]) -> None:
        self.errors = errors
        self.calls: list[tuple[int, ...]] = []
        self.alone = Counter()

    async def __call__(self, records: Sequence[int]) -> list[tuple[str, int]]:
        self.calls.append(tuple(records))
        if len(records) == 1:
            self.alone[records[0]] += 1
        for n in records:
            error = self.errors.get(n)
            if isinstance(error, list):
                error = error.pop(0) if len(error) > 1 else error[0]
            if error is not None:
                raise error
        return [("ok", n) for n in records]


def isolator(max_attempts: int = 3, **kwargs) -> PoisonIsolator[int, tuple[str, int]]:
    return PoisonIsolator(
        key=lambda n: n,
        poisoned=lambda n, exc, attempts: ("poison", n, describe_exception(exc), attempts),
        max_attempts=max_attempts,
        **kwargs,
    )


async def test_a_clean_batch_is_processed_once():
    process = Process({})
    assert await isolator().run([1, 2, 3], process) == [("ok", 1), ("ok", 2), ("ok", 3)]
    assert process.calls == [(1, 2, 3)]


async def test_one_poison_record_is_isolated_and_the_rest_is_scored_in_order():
    process = Process({5: OverflowError("date value out of range")})
    poisoned = []
    isolate = isolator(on_poison=lambda n, exc: poisoned.append((n, type(exc))))
    outcomes = await isolate.run(list(range(8)), process)
    assert outcomes == [("ok", n) for n in range(5)] + [
        ("poison", 5, "OverflowError: date value out of range", 3)
    ] + [("ok", n) for n in (6, 7)]
    assert process.alone[5] == 3  # tried alone exactly max_attempts times
    assert poisoned == [(5, OverflowError)]
    assert len(process.calls) <= 1 + 2 * 3 + 2  # the batch, two halves per level (log2 8 = 3), the retries
    assert len(isolate.ledger) == 0  # nothing left behind


async def test_every_poison_record_of_a_batch_is_isolated():
    process = Process({0: ValueError("bug"), 6: KeyError("x")})
    outcomes = await isolator(max_attempts=2).run(list(range(7)), process)
    assert [o[0] for o in outcomes] == ["poison", "ok", "ok", "ok", "ok", "ok", "poison"]
    assert outcomes[6][2] == "KeyError: 'x'"
    assert process.alone[0] == process.alone[6] == 2


async def test_a_record_that_fails_once_then_works_is_scored():
    process = Process({2: [RuntimeError("flaky"), None]})
    outcomes = await isolator().run([1, 2, 3], process)
    assert outcomes == [("ok", 1), ("ok", 2), ("ok", 3)]


async def test_max_attempts_one_gives_up_at_the_first_lone_failure():
    process = Process({1: ZeroDivisionError("boom")})
    assert (await isolator(max_attempts=1).run([1], process))[0][0] == "poison"
    assert process.alone[1] == 1


async def test_a_transient_error_escapes_and_is_never_counted_against_a_record():
    process = Process({3: TransientError("milvus unreachable")})
    isolate = isolator()
    with pytest.raises(TransientError):
        await isolate.run([1, 2, 3, 4], process)
    assert process.calls == [(1, 2, 3, 4)]  # not split: the whole batch is the caller's to retry
    assert len(isolate.ledger) == 0


async def test_a_transient_error_while_bisecting_escapes_too():
    # the batch fails on a bug; while the halves are tried, the infrastructure goes away
    process = Process({1: ValueError("bug"), 4: TransientError("broker down")})
    with pytest.raises(TransientError):
        await isolator().run([1, 2, 3, 4], process)


async def test_lone_failures_are_counted_across_transient_retries_of_the_batch():
    process = Process({2: [OverflowError("a"), OverflowError("b"), TransientError("s3 down"), OverflowError("c")]})
    isolate = isolator()
    with pytest.raises(TransientError):
        await isolate.run([1, 2], process)
    assert isolate.ledger.failures(2) == 1  # the batch failure and one lone failure so far
    outcomes = await isolate.run([1, 2], process)  # the caller's retry of the whole batch
    assert outcomes[0] == ("ok", 1) and outcomes[1][0] == "poison"
    assert outcomes[1][2:] == ("OverflowError: c", 3)


async def test_cancellation_is_not_a_poison_record():
    import asyncio

    process = Process({1: asyncio.CancelledError()})
    with pytest.raises(asyncio.CancelledError):
        await isolator().run([1, 2], process)


def test_the_ledger_is_bounded():
    ledger = AttemptLedger(max_entries=3)
    for key in range(5):
        ledger.failed(key)
    assert len(ledger) == 3 and ledger.failures(0) == 0 and ledger.failures(4) == 1


def test_describe_names_the_class_with_its_module_unless_builtin():
    from pydantic import BaseModel, ValidationError

    class M(BaseModel):
        x: int

    with pytest.raises(ValidationError) as info:
        M.model_validate({"x": "no"})
    assert describe_exception(info.value).startswith("pydantic_core._pydantic_core.ValidationError: 1 validation error")
    assert describe_exception(OverflowError()) == "OverflowError"
