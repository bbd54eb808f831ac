"""A minimal HTTP/1.1 client on asyncio streams, for the benchmark's load generator.

The load generator shares the 2 cores with the server it measures, so every
millisecond it spends is one the server does not get. aiohttp spent about 1.2 ms
of CPU per request here; this spends a fraction of that. It speaks only what the
benchmark needs: one request at a time per connection, keep-alive when the server
allows it (a new connection when it closes), Content-Length bodies.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


class HTTPError(Exception):
    """The server's answer could not be read."""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def getall(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]


class Connection:
    """One client connection to ``host:port``, reopened when the server closes it."""

    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Response:
        return await asyncio.wait_for(self._request(method, path, headers or {}, body), self.timeout)

    async def _request(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body or method == "POST":
            head.append(f"Content-Length: {len(body)}")
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        try:
            raw = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            await self.close()
            raise HTTPError(f"connection closed before an answer: {error!r}") from error
        lines = raw.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError) as error:
            await self.close()
            raise HTTPError(f"bad status line {lines[0]!r}") from error
        response_headers = []
        length = None
        close = False
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            response_headers.append((name, value))
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.lower() == "close":
                close = True
            elif name == "transfer-encoding":
                await self.close()
                raise HTTPError(f"transfer-encoding {value!r} is not supported")
        if length is not None:
            data = await self._reader.readexactly(length)
        else:  # no length: the body runs to the end of the connection
            data = await self._reader.read()
            close = True
        if close:
            await self.close()
        return Response(status, response_headers, data)

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer, self._reader = self._writer, None, None
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
