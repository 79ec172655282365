"""Open a local media file once, by descriptor, so that the file checked is the file decoded.

`open_media_file` opens the path with O_NONBLOCK (opening a FIFO for reading would otherwise wait
for a writer forever) and O_NOFOLLOW (the path `rci.media.fetch` resolved and checked has no link as
its last component; one there now was swapped in since, and is refused), then checks the open
descriptor with fstat: anything but a regular file is refused, and so is a size over the limit.
The decoder reads from that same descriptor, so nothing swapped into the folder after the check
can be decoded instead. (A folder higher up the path swapped for a link between `fetch_media`'s
check and this open is not caught: Python has no openat2(RESOLVE_BENEATH).)

`local_error` is the one place that maps an OSError on a local media path to its typed error.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePath
from typing import BinaryIO

from rci.core.errors import RCIError, RejectCode
from rci.media.errors import MediaRejected
from rci.media.policy import MediaPolicy
from rci.storage.errors import StorageUnavailable

# OSErrors that mean the filesystem itself is failing right now (a disk error, a network
# filesystem gone away or busy), so the same stat may succeed later: retried. Every other errno is
# an answer about this one path (no such file, name too long, symlink loop, a component that is
# not a folder, ...) that no retry can change; retrying it would stall the worker forever.
TRANSIENT_ERRNOS = frozenset({
    errno.EIO, errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT, errno.ESTALE,
    errno.ECONNRESET, errno.ECONNABORTED, errno.ECONNREFUSED, errno.ENOTCONN, errno.EHOSTDOWN,
    errno.EHOSTUNREACH, errno.ENETDOWN, errno.ENETUNREACH, errno.ENOMEM, errno.ENFILE, errno.EMFILE,
})  # fmt: skip
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def open_media_file(path: Path, policy: MediaPolicy) -> BinaryIO:
    """The regular file at `path`, open for reading (unbuffered: FFmpeg buffers), its size within the policy.

    Raises MediaRejected (missing, a link, not a regular file, empty, too large, unreadable) or
    StorageUnavailable (the filesystem failing); never blocks on a FIFO or a device.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW: the last component is a link
            raise MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"{path} is a symbolic link") from exc
        raise local_error(exc, path) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a folder, FIFO, socket or device: never handed to the decoder
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"{path} is {kind}")
        check_size(info.st_size, policy, str(path))
        file = os.fdopen(fd, "rb", buffering=0)
        file.name = str(path)  # FFmpeg's messages name the file, not the descriptor's number
        return file
    except OSError as exc:
        os.close(fd)
        raise local_error(exc, path) from exc
    except BaseException:
        os.close(fd)
        raise


def check_size(size: int, policy: MediaPolicy, where: str) -> None:
    if size == 0:
        raise MediaRejected(RejectCode.MEDIA_EMPTY, f"{where} is zero bytes")
    if size > policy.max_bytes:
        raise MediaRejected(RejectCode.MEDIA_TOO_LARGE, f"{where} is {size} bytes, limit {policy.max_bytes}")


def local_error(exc: OSError, path: PurePath) -> RCIError:
    """The typed error for an OSError on a local media path: the one place that decides."""
    if exc.errno in TRANSIENT_ERRNOS:
        return StorageUnavailable(f"cannot read {path}: {exc}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return MediaRejected(RejectCode.MEDIA_NOT_ALLOWED, f"media file {path} is not readable")
    reason = os.strerror(exc.errno) if exc.errno else str(exc)  # "File name too long", "Too many levels of ..."
    return MediaRejected(RejectCode.MEDIA_NOT_FOUND, f"no usable media file at {path}: {reason}")
