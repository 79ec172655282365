"""Errors raised by the retrieval package, on the rci.core.errors tree.

`RetrievalUnavailable` is also a `TransientError`: the worker retries the batch later.
Everything else on `RetrievalError` is a bug or a misconfiguration and stops loudly.
"""

from __future__ import annotations

from rci.core.errors import RCIError, TransientError


class RetrievalError(RCIError):
    """Root of every error the vector store raises on purpose."""


class RetrievalUnavailable(RetrievalError, TransientError):
    """The vector database could not be reached (refused, timed out) after all retries."""


class InvalidRecord(RetrievalError, ValueError):
    """A record or query is malformed: wrong embedding shape, non-finite values, bad timestamp."""


class SchemaMismatch(RetrievalError):
    """The existing collection was built with another dimension or vector kind than requested."""


class StoreClosed(RetrievalError):
    """The store was used after close()."""
