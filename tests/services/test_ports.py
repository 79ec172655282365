"""Port helpers: what they report matches what the OS lets us bind."""

from __future__ import annotations

import socket

from rci.services.ports import free_port, is_listening, port_is_free, preferred_or_free


def test_free_port_is_bindable_and_a_listening_one_is_not() -> None:
    port = free_port()
    assert port_is_free(port) and not is_listening(port)
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert not port_is_free(port)
        assert is_listening(port)
        other = preferred_or_free(port)
        assert other != port and port_is_free(other)
    assert preferred_or_free(port) == port
