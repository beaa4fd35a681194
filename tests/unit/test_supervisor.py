"""The worker supervisor's sockets: one per worker on one port, and never a port in use."""

from __future__ import annotations

import socket

import pytest

from adapter import supervisor


def test_one_listening_socket_per_worker_on_the_same_port() -> None:
    socks = supervisor.bind_sockets("127.0.0.1", 0, 3, 16)
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert len(socks) == 3 and len(ports) == 1
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in socks)
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) for s in socks)
        assert all(s.get_inheritable() for s in socks)
        # each of them accepts connections
        port = ports.pop()
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
        accepted = 0
        for s in socks:
            s.setblocking(False)
            while True:
                try:
                    conn, _ = s.accept()
                except BlockingIOError:
                    break
                conn.close()
                accepted += 1
        assert accepted == 30
        for c in clients:
            c.close()
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("reuseport", [False, True])
def test_a_port_in_use_is_refused(reuseport: bool) -> None:
    """Even by another SO_REUSEPORT listener (another adapter), which would share the port."""
    with socket.socket() as other:
        if reuseport:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(OSError):
            supervisor.bind_sockets("127.0.0.1", other.getsockname()[1], 2, 16)
