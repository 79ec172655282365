import random

import grpc
import pytest
from pymilvus.exceptions import MilvusException, ParamError

from rci.core.errors import RCIError, TransientError
from rci.retrieval.errors import RetrievalError, RetrievalUnavailable
from rci.retrieval.retry import RetryPolicy, call_with_retries, is_transient


class FailingThenOk:
    """Raises the given errors in turn, then returns 'ok'; counts calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


REFUSED = MilvusException(2, "Fail connecting to server on 127.0.0.1:1, illegal connection params or server unavailable")


@pytest.mark.parametrize(
    "exc, transient",
    [
        (REFUSED, True),
        (MilvusException(grpc.StatusCode.DEADLINE_EXCEEDED, "[search] Retry timeout: 10s"), True),
        (MilvusException(8, "rate limit exceeded"), True),
        (MilvusException(65535, "internal", retriable=True), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (ParamError(message="dim mismatch"), False),
        (MilvusException(1100, "invalid expression"), False),
        (ValueError("bug"), False),
    ],
)
def test_transient_classification(exc, transient):
    assert is_transient(exc) is transient


def test_transient_failures_are_retried_with_growing_jittered_backoff():
    op = FailingThenOk(REFUSED, REFUSED, TimeoutError())
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=4, base_s=0.1, cap_s=0.25)
    assert call_with_retries(op, what="search", policy=policy, sleep=sleeps.append, rng=random.Random(0)) == "ok"
    assert op.calls == 4
    assert len(sleeps) == 3
    for retry, slept in enumerate(sleeps):
        assert 0 <= slept <= min(0.25, 0.1 * 2**retry)
    assert len(set(sleeps)) == 3  # jittered, not a fixed schedule


def test_exhausted_retries_raise_a_transient_retrieval_error():
    op = FailingThenOk(*[REFUSED] * 5)
    with pytest.raises(RetrievalUnavailable) as info:
        call_with_retries(op, what="upsert", policy=RetryPolicy(attempts=3), sleep=lambda _: None)
    assert op.calls == 3
    assert isinstance(info.value, TransientError) and isinstance(info.value, RCIError)
    assert info.value.__cause__ is REFUSED


def test_other_failures_raise_at_once_typed():
    bad = ParamError(message="bad filter")
    op = FailingThenOk(bad)
    with pytest.raises(RetrievalError) as info:
        call_with_retries(op, what="search", policy=RetryPolicy(attempts=5), sleep=lambda _: None)
    assert op.calls == 1
    assert not isinstance(info.value, TransientError)
    assert info.value.__cause__ is bad
