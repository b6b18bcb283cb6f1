"""A bounded look at the broker before any kafka-python client exists.

kafka-python's bootstrap has no deadline on a TLS handshake: KAFKA_SECURITY_PROTOCOL=SSL against a plaintext
listener waits for minutes inside the client, where no signal handler can reach it. This probe opens the
connection the way the settings say (TCP, then TLS when asked), sends one ApiVersions request and waits for
its answer, all within KAFKA_CONNECT_TIMEOUT_S, so a dead broker or a wrong protocol is one line in seconds."""

from __future__ import annotations

import os
import select
import socket
import ssl
import struct
import threading
import time

from extract.core.settings import Settings, SettingsError

_API_VERSIONS_KEY = 18
_CORRELATION_ID = 0x454C54  # "ELT"
_CLIENT_ID = b"jobs-elt-probe"
# How long a plaintext request may take to be answered before the TLS handshake is tried instead.
PLAINTEXT_SNIFF_S = 0.5


class KafkaUnreachable(RuntimeError):
    """No bootstrap server answered within the timeout; the message names them and the protocol."""


def _api_versions_request() -> bytes:
    body = struct.pack(">hhih", _API_VERSIONS_KEY, 0, _CORRELATION_ID, len(_CLIENT_ID)) + _CLIENT_ID
    return struct.pack(">i", len(body)) + body


class _Stopped(Exception):
    pass


def _wait(sock: socket.socket, *, write: bool, deadline: float, stop: threading.Event | None) -> None:
    """Block until `sock` is ready, in short slices so a stop (SIGTERM) is seen within a quarter second."""
    while True:
        if stop is not None and stop.is_set():
            raise _Stopped
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        ready = (
            select.select([], [sock], [], min(remaining, 0.25))
            if write
            else select.select([sock], [], [], min(remaining, 0.25))
        )
        if ready[0] or ready[1]:
            return


def _handshake(sock: ssl.SSLSocket, deadline: float, stop: threading.Event | None) -> None:
    while True:
        try:
            sock.do_handshake()
            return
        except ssl.SSLWantReadError:
            _wait(sock, write=False, deadline=deadline, stop=stop)
        except ssl.SSLWantWriteError:
            _wait(sock, write=True, deadline=deadline, stop=stop)


def _receive(sock: socket.socket, size: int, deadline: float, stop: threading.Event | None) -> bytes:
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except (BlockingIOError, ssl.SSLWantReadError):
            _wait(sock, write=False, deadline=deadline, stop=stop)
            continue
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def _tls_context(settings: Settings) -> ssl.SSLContext:
    cafile = settings.kafka_ssl_cafile
    if cafile and not os.path.isfile(cafile):
        raise SettingsError(f"KAFKA_SSL_CAFILE={cafile!r}: no such file")
    return ssl.create_default_context(cafile=cafile)


def _probe_one(settings: Settings, server: str, deadline: float, stop: threading.Event | None) -> None:
    """Raise OSError (or SettingsError for a verdict no retry changes) unless `server` answers ApiVersions."""
    host, _, port = server.rpartition(":")
    host = host.strip("[]")
    protocol = settings.kafka_security_protocol
    sock = socket.create_connection((host, int(port)), timeout=max(0.05, deadline - time.monotonic()))
    try:
        sock.setblocking(False)
        if protocol in ("SSL", "SASL_SSL") and _answers_in_plaintext(host, int(port), deadline, stop):
            raise SettingsError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} but {server} answers Kafka requests in plaintext;"
                " use PLAINTEXT or SASL_PLAINTEXT, or the broker's TLS listener"
            )
        if protocol in ("SSL", "SASL_SSL"):
            sock = _tls_context(settings).wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
            try:
                _handshake(sock, deadline, stop)
            except TimeoutError:
                raise SettingsError(
                    f"KAFKA_SECURITY_PROTOCOL={protocol}: no TLS handshake from {server} within"
                    f" {settings.kafka_connect_timeout_s:g}s; is that listener plaintext (use PLAINTEXT or"
                    " SASL_PLAINTEXT)?"
                ) from None
            except ssl.SSLCertVerificationError as error:
                raise SettingsError(
                    f"KAFKA_SECURITY_PROTOCOL={protocol}: the certificate of {server} is not trusted"
                    f" ({error.verify_message}); set KAFKA_SSL_CAFILE to its CA"
                ) from None
            except ssl.SSLError as error:
                raise SettingsError(
                    f"KAFKA_SECURITY_PROTOCOL={protocol}: TLS handshake with {server} failed ({error.reason});"
                    " is that listener plaintext?"
                ) from None
        try:
            size, correlation = _exchange(sock, deadline, stop)
        except TimeoutError:
            hint = "TLS (use SSL or SASL_SSL)" if protocol in ("PLAINTEXT", "SASL_PLAINTEXT") else "Kafka"
            raise SettingsError(
                f"{server} accepted a connection but did not answer a Kafka request within"
                f" {settings.kafka_connect_timeout_s:g}s with KAFKA_SECURITY_PROTOCOL={protocol};"
                f" does it expect {hint}?"
            ) from None
        if correlation != _CORRELATION_ID or size < 4:
            raise SettingsError(f"{server} answered, but not as a Kafka broker; check KAFKA_BOOTSTRAP_SERVERS")
    finally:
        sock.close()


def _exchange(sock: socket.socket, deadline: float, stop: threading.Event | None) -> tuple[int, int]:
    """Send ApiVersions v0, return (size, correlation id) of the answer's header."""
    request = _api_versions_request()
    while request:
        try:
            request = request[sock.send(request) :]
        except (BlockingIOError, ssl.SSLWantWriteError):
            _wait(sock, write=True, deadline=deadline, stop=stop)
    size, correlation = struct.unpack(">ii", _receive(sock, 8, deadline, stop))
    return size, correlation


def _answers_in_plaintext(host: str, port: int, deadline: float, stop: threading.Event | None) -> bool:
    """Whether the listener answers a plaintext Kafka request: asked before a TLS handshake, because a plaintext
    listener never answers a TLS ClientHello (it waits for the rest of a 369 MB "request")."""
    sniff_deadline = min(deadline, time.monotonic() + PLAINTEXT_SNIFF_S)
    try:
        with socket.create_connection((host, port), timeout=max(0.05, sniff_deadline - time.monotonic())) as sock:
            sock.setblocking(False)
            _, correlation = _exchange(sock, sniff_deadline, stop)
    except (OSError, struct.error):
        return False  # a TLS listener refuses or ignores it: go on with the handshake
    return correlation == _CORRELATION_ID


def check_broker(settings: Settings, stop: threading.Event | None = None) -> None:
    """Return once one bootstrap server answers; raise KafkaUnreachable (nobody answered in time) or
    SettingsError (somebody answered, and the settings are what is wrong)."""
    servers = settings.kafka_bootstrap_servers.split(",")
    deadline = time.monotonic() + settings.kafka_connect_timeout_s
    problems: dict[str, str] = {}
    while True:
        for server in servers:
            if stop is not None and stop.is_set():
                raise KafkaUnreachable("stopped while connecting to Kafka")
            try:
                _probe_one(settings, server, deadline, stop)
                return
            except _Stopped:
                raise KafkaUnreachable("stopped while connecting to Kafka") from None
            except (OSError, ValueError) as error:
                if isinstance(error, SettingsError):
                    raise
                problems[server] = (getattr(error, "strerror", None) or str(error) or type(error).__name__).strip()
        if time.monotonic() + 0.25 >= deadline:
            break
        if stop is not None and stop.wait(0.25):
            raise KafkaUnreachable("stopped while connecting to Kafka")
        if stop is None:
            time.sleep(0.25)
    details = "; ".join(f"{server}: {problem}" for server, problem in problems.items())
    raise KafkaUnreachable(
        f"cannot reach Kafka at {settings.kafka_bootstrap_servers} within {settings.kafka_connect_timeout_s:g}s"
        f" ({details}); is the broker running (`make up`)? check KAFKA_BOOTSTRAP_SERVERS"
    )
