"""The web listeners' sockets, in process: what asyncio does with the connections they accept."""

from __future__ import annotations

import asyncio
import socket

import pytest

from appliance.control.guard import ConnectionGate, gated_listener


@pytest.mark.asyncio
async def test_accepted_connections_send_without_waiting_for_acks() -> None:
    """asyncio turns Nagle off only for sockets whose protocol number says TCP. A listener made
    with protocol 0 handed out connections with Nagle on: a keep-alive answer (headers, then the
    body in a second write) waited for the client's delayed ACK, 40 ms on every guest search."""
    listener = gated_listener("127.0.0.1", 0, ConnectionGate(total=4, per_address=4))
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    try:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        assert await asyncio.wait_for(seen, 10) != 0, "Nagle is on for the box's web connections"
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
