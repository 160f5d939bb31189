"""The load script's websocket client (bench/reflex_ws.py) sees a server's first frame at once,
even when it came in the same TCP read as the 101 answer (issue 14: about 1 page load in 20 of
bench_live_load took 25 s, the server's ping interval)."""

from __future__ import annotations

import asyncio
import base64
import hashlib

from bench.reflex_ws import _Client

OPEN_PACKET = '0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'


def _accept_key(key: str) -> str:
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


def _text_frame(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


async def test_a_frame_sent_with_the_handshake_answer_is_received_without_more_bytes():
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip().decode()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        answer = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {_accept_key(key)}\r\n\r\n"
        ).encode()
        writer.write(answer + _text_frame(OPEN_PACKET))  # one write: one read on the client
        await writer.drain()
        await closed.wait()  # then silence, as a server between its pings
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = await _Client.connect(f"ws://127.0.0.1:{port}/_event/?EIO=4&transport=websocket")
        try:
            # Without the fix this waits for the next bytes from the server, which never come.
            assert await asyncio.wait_for(client.receive(), 5) == OPEN_PACKET
        finally:
            closed.set()
            await client.close()
    finally:
        server.close()
        await server.wait_closed()
