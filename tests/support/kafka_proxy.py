"""A fault injector for the Kafka protocol: a TCP proxy in front of the real broker that corrupts records on
their way to the client, the way a disk or a broken broker would. No producer can write such a batch (the
broker checks what it stores), so the proxy changes one byte of every record batch that holds `marker` in
Fetch responses (the batch's CRC then fails), and nothing else. It rewrites the broker's own address in
every response (Metadata, FindCoordinator) to its own, so the client keeps talking through it.

Frames are 4-byte big-endian sizes and a body; a request body begins with api_key (int16), api_version
(int16) and correlation_id (int32), a response body with the correlation_id it answers."""

from __future__ import annotations

import socket
import struct
import threading
from types import TracebackType

FETCH = 1


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _read_frame(sock: socket.socket) -> bytes | None:
    header = _read_exactly(sock, 4)
    if header is None:
        return None
    return _read_exactly(sock, struct.unpack(">i", header)[0])


class CorruptingProxy:
    def __init__(self, broker: str, marker: bytes) -> None:
        host, port = broker.rsplit(":", 1)
        self._broker = (host, int(port))
        self._marker = marker
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        # The broker advertises host:port as a string and an int32; same host, so the frame keeps its size.
        self._advertised = host.encode() + struct.pack(">i", int(port))
        self._own = host.encode() + struct.pack(">i", self.port)
        self.corrupted = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="kafka-proxy").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._broker)
            with self._lock:
                self._sockets += [client, upstream]
            pending: dict[int, int] = {}
            threading.Thread(target=self._requests, args=(client, upstream, pending), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, pending), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, pending: dict[int, int]) -> None:
        try:
            while (frame := _read_frame(client)) is not None:
                api_key, _, correlation_id = struct.unpack_from(">hhi", frame)
                pending[correlation_id] = api_key
                upstream.sendall(struct.pack(">i", len(frame)) + frame)
        except OSError:
            pass
        finally:
            upstream.close()

    def _responses(self, upstream: socket.socket, client: socket.socket, pending: dict[int, int]) -> None:
        try:
            while (frame := _read_frame(upstream)) is not None:
                (correlation_id,) = struct.unpack_from(">i", frame)
                body = frame.replace(self._advertised, self._own)
                if pending.pop(correlation_id, None) == FETCH and self._marker in body:
                    # The marker sits in a record's value: flipping a byte of it breaks its batch's CRC only.
                    body = body.replace(self._marker, bytes([self._marker[0] ^ 0x20]) + self._marker[1:])
                    with self._lock:
                        self.corrupted += 1
                client.sendall(struct.pack(">i", len(body)) + body)
        except OSError:
            pass
        finally:
            client.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def __enter__(self) -> CorruptingProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
