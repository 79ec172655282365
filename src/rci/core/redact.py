"""Secrets out of URIs before they are logged.

A configured URI may carry credentials (`RCI_MILVUS_URI=http://user:pass@host:19530`, an S3
endpoint with userinfo, a presigned URL's signature); logs are read by more people than
settings, so anything that logs a configured URI passes it through `redact_uri` first.
"""

from __future__ import annotations

import re

REDACTED = "***"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# query parameters whose value is a credential (presigned S3 URLs: X-Amz-Signature, -Credential,
# -Security-Token; others: token=, password=, api_key= ...)
_SECRET_PARAM = re.compile(r"token|secret|passw|pwd|signature|credential|api[_-]?key|access[_-]?key|^sig$", re.I)
_PARAM = re.compile(r"(?P<lead>[?&;])(?P<key>[^=&;#]*)=(?P<value>[^&;#]*)")


def redact_uri(uri: str) -> str:
    """`uri` with its password (or a user-only userinfo, often a token) and secret query values
    replaced by `***`; anything else (a Milvus Lite file path, a bare host) unchanged.

    `http://user:pass@host:19530/db` -> `http://user:***@host:19530/db`; `https://tok@host` -> `https://***@host`.
    """
    scheme = _SCHEME.match(uri)
    start = scheme.end() if scheme else 0
    end = _userinfo_end(uri, start)
    if end >= 0:
        user, has_password, _ = uri[start:end].partition(":")
        uri = uri[:start] + (f"{user}:{REDACTED}" if has_password else REDACTED) + uri[end:]
    path = min((i for i in (uri.find(c, start) for c in "/?#") if i >= 0), default=len(uri))
    return uri[:path] + _PARAM.sub(_redact_param, uri[path:])


def _userinfo_end(uri: str, start: int) -> int:
    """Where the userinfo ends (its `@`), or -1. Written by hand, secrets are often not
    percent-encoded: an AWS secret key holds `/`, a password `@`. So the userinfo runs to the
    last `@` before the query, provided what precedes it is a userinfo: no `/` at all, or a
    `user:` whose `:` is not followed by a port (`host:19530/path/a@b.mp4` has no userinfo)."""
    stop = min((i for i in (uri.find(c, start) for c in "?#") if i >= 0), default=len(uri))
    at = uri.rfind("@", start, stop)
    if at < 0:
        return -1
    candidate = uri[start:at]
    if "/" not in candidate:
        return at
    colon, slash = candidate.find(":"), candidate.find("/")
    if 0 <= colon < slash and not candidate[colon + 1:slash].isdigit():
        return at
    return -1


def _redact_param(match: re.Match[str]) -> str:
    if not _SECRET_PARAM.search(match["key"]):
        return match[0]
    return f"{match['lead']}{match['key']}={REDACTED}"
