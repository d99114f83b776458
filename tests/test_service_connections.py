"""``mdtflag serve --max-connections``: the workers hold equal shares of the client connections.

Without a cap a worker keeps every keep-alive connection it wins, and one worker may end up with most
of them (its clients then wait longest). With ``--max-connections N`` each of W workers holds at most
⌈N / W⌉; a further client waits to be accepted until a connection closes.
"""

from __future__ import annotations

import json
import socket

import pytest
from service_support import Server

from mdtflag.service.command import per_worker_connections


def _ready(sock: socket.socket) -> dict[str, object]:
    """One keep-alive ``GET /ready`` on ``sock``; the parsed body."""
    sock.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the answer")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200")
    result: dict[str, object] = json.loads(body)
    return result


@pytest.mark.parametrize(
    ("cap", "workers", "share"),
    [(None, 2, 128), (32, 2, 16), (4, 2, 2), (5, 2, 3), (1, 2, 1), (3, 1, 3)],
)
def test_each_worker_takes_an_equal_share(cap: int | None, workers: int, share: int) -> None:
    assert per_worker_connections(cap, workers, queue=8) == share


def test_connections_are_spread_over_the_workers_and_extra_clients_wait() -> None:
    with Server("--insecure-no-auth", "--max-connections", "2", workers=2) as srv:
        first = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        second = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        try:
            pid_first = _ready(first)["pid"]
            pid_second = _ready(second)["pid"]
            assert pid_first != pid_second  # one connection per worker
            assert _ready(first)["pid"] == pid_first  # keep-alive: the connection stays on its worker
            third = socket.create_connection(("127.0.0.1", srv.port), timeout=30)  # the kernel completes it
            try:
                third.settimeout(1.5)
                third.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
                with pytest.raises(socket.timeout):
                    third.recv(65536)  # no worker accepts it while both hold their share
                first.close()
                third.settimeout(30)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += third.recv(65536)
                assert data.startswith(b"HTTP/1.1 200")
            finally:
                third.close()
        finally:
            first.close()
            second.close()
        assert srv.stop() == 0  # the shared listening socket shuts down gracefully too
