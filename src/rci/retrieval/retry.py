"""Which Milvus failures are transient, and a bounded retry with exponential backoff + jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from pymilvus.exceptions import ConnectError, MilvusException, MilvusUnavailableException

from rci.retrieval.errors import RetrievalError, RetrievalUnavailable
from rci.core.logs import get_logger

T = TypeVar("T")
log = get_logger(__name__)

_TRANSIENT_GRPC = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
_RATE_LIMIT = 8  # pymilvus ErrorCode.RATE_LIMIT
_TRANSIENT_MESSAGES = ("fail connecting", "server unavailable", "connection refused", "deadline exceeded", "timeout")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries in all, the first included
    base_s: float = 0.2  # first backoff ceiling; doubles each retry
    cap_s: float = 5.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """'Full jitter' backoff: uniform(0, min(cap, base * 2**retry))."""
        return rng.uniform(0, min(self.cap_s, self.base_s * 2**retry))


def is_transient(exc: BaseException) -> bool:
    """Connection refused, timeouts, rate limiting: worth another try. Everything else is not."""
    if isinstance(exc, ConnectError | MilvusUnavailableException | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, grpc.RpcError):
        return exc.code() in _TRANSIENT_GRPC
    if isinstance(exc, MilvusException):
        if exc.retriable or exc.code in _TRANSIENT_GRPC or exc.code == _RATE_LIMIT:
            return True
        return any(marker in str(exc.message).lower() for marker in _TRANSIENT_MESSAGES)
    return False


def call_with_retries(
    operation: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run `operation`; retry transient failures, then raise RetrievalUnavailable.

    A non-transient failure raises RetrievalError at once (chained to the cause).
    """
    rng = rng or random.Random()
    for attempt in range(1, policy.attempts + 1):
        try:
            return operation()
        except RetrievalError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified right below, re-raised typed
            if not is_transient(exc):
                raise RetrievalError(f"milvus {what} failed: {exc}") from exc
            if attempt == policy.attempts:
                raise RetrievalUnavailable(f"milvus {what} failed after {attempt} attempts: {exc}") from exc
            delay = policy.delay(attempt - 1, rng)
            log.warning("milvus transient failure, retrying", what=what, attempt=attempt, delay_s=round(delay, 3), error=str(exc))
            sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises
