"""A peer that writes exactly the bytes a test scripts: a real TCP server on 127.0.0.1.

Unlike the fakes built on http.server, nothing here is HTTP: a broken status line, a
header sent twice, a Content-Length that lies, a chunk size of "-5", a gzip bomb, an
endless body, all at a scripted pace. Each request (read up to its blank line, and its
Content-Length body) gets the next scripted `Answer`, or the one its route names.
"""

from __future__ import annotations

import gzip
import itertools
import socket
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Self


@dataclass(frozen=True)
class Answer:
    """What to write for one request.

    `head` goes out as given (status line, headers, blank line: nothing is added), then
    `body`: bytes, or an iterable of chunks that may never end. With `drip`, everything
    (or, with `head_at_once`, the body) is written `drip_size` bytes at a time, `drip`
    seconds apart. `close` ends the connection after the answer; else the next request
    on it is read and answered.
    """

    head: bytes
    body: bytes | Iterable[bytes] = b""
    drip: float = 0.0
    drip_size: int = 1
    close: bool = True
    head_at_once: bool = False


def http(status: str, *headers: str, body: bytes = b"", length: bool = True) -> Answer:
    """A well-formed answer: `status` like "200 OK", headers like "Name: value".

    It says `Connection: close`, as the peer closes after it: a client must not take the
    connection for one it may use again (whether the close has reached it yet is a race).
    """
    lines = [f"HTTP/1.1 {status}", *headers, "Connection: close"]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return Answer(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), body)


def endless(chunk: bytes = b"x" * 65536, *, seconds: float = 60.0) -> Iterator[bytes]:
    """A body that does not end: the same chunk again and again, for `seconds` (so that
    a client that reads it all, as urllib3 drains a retried answer, comes back at last
    and the test can say how long it took)."""
    stop = time.monotonic() + seconds
    return itertools.takewhile(lambda _: time.monotonic() < stop, itertools.repeat(chunk))


def endless_chunked(chunk: bytes = b"x" * 65536, *, seconds: float = 60.0) -> Iterator[bytes]:
    """Chunked framing that does not end (for `seconds`)."""
    return endless(b"%x\r\n%s\r\n" % (len(chunk), chunk), seconds=seconds)


def gzip_bomb(inflated: int = 3 << 30, block: int = 1 << 20) -> Iterator[bytes]:
    """A gzip stream of zeros that inflates to `inflated` bytes: ~1 KiB on the wire per
    `block` (3 GiB: ~3 MiB sent), left unfinished (no trailer) like a cut-off stream.

    After a full flush the compressor starts afresh, so one flushed block's bytes can be
    sent again and again, and each inflates to `block` more zeros.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(block)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return itertools.chain([first], itertools.repeat(again, inflated // block - 1))


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


@dataclass
class HostilePeer:
    """Serves `script` in order (the last answer again once it runs out), or by `routes`:
    "METHOD /path" or "/path" to an Answer. `requests` holds each request's first line."""

    script: list[Answer] = field(default_factory=list)
    routes: dict[str, Answer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.requests: list[str] = []
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._served = 0
        self.connections = 0  # accepted so far
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._accepting.join(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)
        self._sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _answer_for(self, first_line: str) -> Answer:
        method, _, rest = first_line.partition(" ")
        path = rest.split(" ", 1)[0].split("?", 1)[0]
        with self._lock:
            self.requests.append(f"{method} {path}")
            if f"{method} {path}" in self.routes:
                return self.routes[f"{method} {path}"]
            if path in self.routes:
                return self.routes[path]
            if not self.script:
                return http("404 Not Found", body=b"not scripted")
            answer = self.script[min(self._served, len(self.script) - 1)]
            self._served += 1
            return answer

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        with conn:
            reader = _Requests(conn, self._closed)
            while (request := reader.next()) is not None:
                first_line, body = request
                self.bodies.append(body)
                answer = self._answer_for(first_line)
                if not self._write(conn, answer) or answer.close:
                    return

    def _write(self, conn: socket.socket, answer: Answer) -> bool:
        """Write the answer at its pace; False once the client or the test has gone."""
        pieces: Iterable[bytes] = itertools.chain(
            [answer.head], [answer.body] if isinstance(answer.body, bytes) else answer.body
        )
        try:
            for index, piece in enumerate(pieces):
                if self._closed.is_set():
                    return False
                if not answer.drip or (index == 0 and answer.head_at_once):
                    conn.settimeout(1.0)
                    conn.sendall(piece)
                    continue
                for at in range(0, len(piece), answer.drip_size):
                    if self._closed.wait(answer.drip):
                        return False
                    conn.sendall(piece[at : at + answer.drip_size])
        except OSError:  # the client hung up (the point of most tests) or is not reading
            return False
        return True


class _Requests:
    """Requests read off one connection: (first line, body), None when it ends."""

    def __init__(self, conn: socket.socket, closed: threading.Event) -> None:
        self.conn, self.closed, self.buffer = conn, closed, b""

    def _more(self) -> bool:
        while not self.closed.is_set():
            try:
                data = self.conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return False
            self.buffer += data
            return bool(data)
        return False

    def next(self) -> tuple[str, bytes] | None:
        while b"\r\n\r\n" not in self.buffer:
            if not self._more():
                return None
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(self.buffer) < length:
            if not self._more():
                return None
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return lines[0], body
