"""Minimal asyncio clients for the soak: RESP2, HTTP/1.1 keep-alive and PostgreSQL's simple query
protocol. Standard library only; each does just what bench/soak/driver.py needs.
"""

import asyncio
import socket
import struct


class ProtocolError(Exception):
    """The peer sent something this client cannot parse."""


class RespError(Exception):
    """A RESP error reply (-ERR ..., -BUSY ...); the connection is still usable."""

    @property
    def prefix(self):
        return str(self).split(" ", 1)[0]


async def open_tcp(host, port, timeout):
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


def abort(writer, reset):
    """Closes the connection at once: with reset, an RST (SO_LINGER 0); else a plain FIN.

    Either way nothing queued is flushed and nothing more is read: the client vanishes.
    """
    sock = writer.get_extra_info("socket")
    if reset and sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


def resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


async def resp_read(reader):
    """One RESP2 reply: bytes, int, None, list, or a RespError instance (returned, not raised)."""
    line = await reader.readline()
    if not line.endswith(b"\r\n"):
        raise asyncio.IncompleteReadError(line, None)
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body
    if kind == b"-":
        return RespError(body.decode(errors="replace"))
    if kind == b":":
        try:
            return int(body)
        except ValueError as e:
            raise ProtocolError(f"bad integer {line!r}") from e
    if kind == b"$":
        try:
            n = int(body)
        except ValueError as e:
            raise ProtocolError(f"bad bulk length {line!r}") from e
        if n < 0:
            return None
        data = await reader.readexactly(n + 2)
        if data[-2:] != b"\r\n":
            raise ProtocolError("bulk string without CRLF")
        return data[:-2]
    if kind == b"*":
        try:
            n = int(body)
        except ValueError as e:
            raise ProtocolError(f"bad array length {line!r}") from e
        if n < 0:
            return None
        return [await resp_read(reader) for _ in range(n)]
    raise ProtocolError(f"unexpected reply {line[:40]!r}")


class Resp:
    """One RESP connection, one request at a time."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host, port, timeout=5.0):
        return cls(*await open_tcp(host, port, timeout))

    async def call(self, *args):
        self.writer.write(resp_command(*args))
        return await resp_read(self.reader)

    def close(self):
        self.writer.transport.abort()


def http_request(path, host="corral"):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def http_read(reader):
    """One HTTP/1.1 response with Content-Length: (status, headers dict lower-cased, body)."""
    line = await reader.readline()
    if not line:
        raise asyncio.IncompleteReadError(line, None)
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ProtocolError(f"bad status line {line[:60]!r}")
    try:
        status = int(parts[1])
    except ValueError as e:
        raise ProtocolError(f"bad status line {line[:60]!r}") from e
    headers = {}
    while True:
        h = await reader.readline()
        if not h.endswith(b"\r\n"):
            raise asyncio.IncompleteReadError(h, None)
        if h == b"\r\n":
            break
        name, _, value = h.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode(errors="replace")
    if "transfer-encoding" in headers:
        raise ProtocolError("chunked response")
    n = int(headers.get("content-length", "0"))
    body = await reader.readexactly(n) if n else b""
    return status, headers, body


class Http:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host, port, timeout=5.0):
        return cls(*await open_tcp(host, port, timeout))

    async def get(self, path):
        self.writer.write(http_request(path))
        status, headers, body = await http_read(self.reader)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def close(self):
        self.writer.transport.abort()


class PgError(Exception):
    pass


class Pg:
    """PostgreSQL's frontend/backend protocol 3.0, simple queries only, trust authentication."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host, port, user, database, timeout=10.0):
        reader, writer = await open_tcp(host, port, timeout)
        self = cls(reader, writer)
        params = b"user\0%s\0database\0%s\0application_name\0corral-soak\0\0" % (
            user.encode(),
            database.encode(),
        )
        writer.write(struct.pack("!ii", 8 + len(params), 196608) + params)
        while True:
            kind, body = await self._message()
            if kind == b"R":
                (code,) = struct.unpack("!i", body[:4])
                if code != 0:
                    raise PgError(f"authentication method {code} is not supported (trust only)")
            elif kind == b"E":
                raise PgError(self._error_text(body))
            elif kind == b"Z":
                return self

    async def _message(self):
        kind = await self.reader.readexactly(1)
        (n,) = struct.unpack("!i", await self.reader.readexactly(4))
        return kind, await self.reader.readexactly(n - 4)

    @staticmethod
    def _error_text(body):
        fields = {}
        for part in body.split(b"\0"):
            if part:
                fields[part[:1]] = part[1:].decode(errors="replace")
        return f"{fields.get(b'S', 'ERROR')}: {fields.get(b'M', '?')}"

    async def query(self, sql):
        """Runs sql; returns the rows (lists of str or None) of its last result set."""
        data = sql.encode() + b"\0"
        self.writer.write(b"Q" + struct.pack("!i", 4 + len(data)) + data)
        rows, error = [], None
        while True:
            kind, body = await self._message()
            if kind == b"T":
                rows = []
            elif kind == b"D":
                (count,) = struct.unpack("!h", body[:2])
                pos, row = 2, []
                for _ in range(count):
                    (n,) = struct.unpack("!i", body[pos : pos + 4])
                    pos += 4
                    if n < 0:
                        row.append(None)
                    else:
                        row.append(body[pos : pos + n].decode())
                        pos += n
                rows.append(row)
            elif kind == b"E":
                error = PgError(self._error_text(body))
            elif kind == b"Z":
                if error is not None:
                    raise error
                return rows

    def close(self):
        self.writer.transport.abort()
