"""A TCP proxy that can cut a service off: how the fault runs make Milvus or the object store
unavailable without losing what they hold.

The worker is pointed at the proxy instead of the service. `cut()` closes the listening socket
and resets every open connection, so clients see what a crashed or partitioned service looks
like (connection reset, then connection refused); `restore()` listens again on the same port.
The service itself keeps running with its data, as a real store does across a network outage
(the local S3 server keeps objects in memory, so stopping it would also lose the feature cache,
which no real outage does).
"""

from __future__ import annotations

import socket
import struct
import threading

from rci.services.ports import LOOPBACK, free_port

_CHUNK = 64 * 1024


class TcpProxy:
    """Forwards `127.0.0.1:port` to `upstream_host:upstream_port`, one thread pair per connection."""

    def __init__(self, upstream_host: str, upstream_port: int, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port(LOOPBACK)
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._killed: set[socket.socket] = set()  # cut: to be reset, never half-closed
        self._lock = threading.Lock()
        self.cuts = 0

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name=f"proxy-{self.port}").start()
        return self

    def cut(self) -> None:
        """Unavailable from now on: no listener, every open connection reset."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
            self._killed.update(conns)
        for conn in conns:
            # close() alone would not reach a socket another thread is blocked in recv() on: arm an
            # RST (linger 0) and wake the pumps; they see EOF, do not pass it on, and the reaper's
            # close() then resets both ends.
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        self.cuts += 1

    def restore(self) -> None:
        if self._listener is None:
            self.start()

    def stop(self) -> None:
        self.cut()

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut()
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _reset(client)
                    _reset(upstream)
                    return
                self._conns.update((client, upstream))
            done = threading.Semaphore(0)  # released once per finished direction
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, done), daemon=True).start()
            threading.Thread(target=self._reap, args=(client, upstream, done), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, done: threading.Semaphore) -> None:
        try:
            while data := src.recv(_CHUNK):
                dst.sendall(data)
            if src not in self._killed:
                dst.shutdown(socket.SHUT_WR)  # pass the half-close on; the other direction goes on
        except OSError:  # reset by a peer: end the other direction too
            self._kill(src, dst)
        finally:
            done.release()

    def _kill(self, *socks: socket.socket) -> None:
        with self._lock:
            self._killed.update(socks)
        for sock in socks:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def _reap(self, client: socket.socket, upstream: socket.socket, done: threading.Semaphore) -> None:
        done.acquire()
        done.acquire()
        with self._lock:
            self._conns.difference_update((client, upstream))
            self._killed.difference_update((client, upstream))
        _close_quietly(client)
        _close_quietly(upstream)


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a crashed peer's kernel would answer."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _close_quietly(sock)


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
