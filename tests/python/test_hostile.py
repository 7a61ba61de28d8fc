"""Hostile clients at the HTTP level: slow, silent, flooding, oversized, malformed.

Each gets a clear answer (an awsJson error, or its connection closed when it never completes a
request) within a bounded time, the server's memory stays bounded, and well-behaved clients keep
being served meanwhile. The server runs with short limits so the suite stays fast:
--header-timeout 1s --body-timeout 2s --max-connections 32.

Decoder-level robustness (any bytes, any JSON never panic or fault) is proven in
crates/wire/tests/never_a_fault.rs; simple framing errors in test_raw_http.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from conftest import _start

JSON_11 = "application/x-amz-json-1.1"
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
MAX_CONNECTIONS = 32
SLACK = 3.0  # scheduling slack on a busy CI machine


@pytest.fixture(scope="module")
def limited(marketmeter_bin):
    srv, tmp = _start(
        marketmeter_bin,
        ["--auth", "open", "--header-timeout", "1s", "--body-timeout", "2s", "--max-connections", str(MAX_CONNECTIONS)],
        "limits",
    )
    yield srv
    srv.stop()
    tmp.cleanup()


def connect(server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def head(target: str = "ResolveCustomer", length: int | None = None, extra: str = "") -> bytes:
    framing = "Transfer-Encoding: chunked\r\n" if length is None else f"Content-Length: {length}\r\n"
    return (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {JSON_11}\r\n"
        f"X-Amz-Target: AWSMPMeteringService.{target}\r\n{framing}{extra}\r\n"
    ).encode()


def read_response(s: socket.socket) -> tuple[int, dict, dict]:
    """(status, lower-case headers, JSON body) of one response; the connection may then close."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response; got {buf[:200]!r}")
        buf += chunk
    raw_head, rest = buf.split(b"\r\n\r\n", 1)
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, json.loads(rest[:length] or b"{}")


def closed_within(s: socket.socket, seconds: float) -> bool:
    """True when the server closes `s` (EOF or reset) within `seconds`."""
    s.settimeout(seconds)
    try:
        while True:
            if not s.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def awsjson_error(result, status: int, code: str) -> dict:
    got_status, headers, doc = result
    assert (got_status, doc.get("__type")) == (status, code), result
    assert headers.get("x-amzn-errortype") == code and headers.get("x-amzn-requestid"), headers
    assert doc.get("message"), doc
    return doc


def normal_request(server) -> tuple[int, dict, dict]:
    """A complete, valid request; answered 400 ValidationException (empty token) when served."""
    s = connect(server)
    try:
        body = b'{"RegistrationToken": ""}'
        s.sendall(head(length=len(body)) + body)
        return read_response(s)
    finally:
        s.close()


def peak_rss_kib(server) -> int:
    for line in open(f"/proc/{server.proc.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


# ---------------------------------------------------------------------------------------------
# Slow and silent clients


def test_silent_connection_is_closed_after_the_header_timeout(limited):
    s = connect(limited)
    started = time.monotonic()
    assert closed_within(s, HEADER_TIMEOUT + SLACK), "a connection that sends nothing is kept open"
    assert time.monotonic() - started >= HEADER_TIMEOUT * 0.5


def test_headers_trickling_in_are_cut_off(limited):
    """Slowloris: a byte of header every 200 ms never completes; the deadline is total, not idle."""
    s = connect(limited)
    started = time.monotonic()
    payload = head(length=2)
    try:
        for b in payload[:-4]:
            s.send(bytes([b]))
            time.sleep(0.2)
            if time.monotonic() - started > HEADER_TIMEOUT + SLACK:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_within(s, 1.0), "trickled headers kept the connection open"
    assert time.monotonic() - started < HEADER_TIMEOUT + SLACK + 1.5


def test_slow_body_gets_408(limited):
    s = connect(limited)
    s.sendall(head(length=100) + b'{"Registr')
    started = time.monotonic()
    s.settimeout(BODY_TIMEOUT + SLACK)
    doc = awsjson_error(read_response(s), 408, "RequestTimeoutException")
    assert "body" in doc["message"]
    assert BODY_TIMEOUT * 0.5 <= time.monotonic() - started < BODY_TIMEOUT + SLACK


def test_idle_keep_alive_connection_is_closed(limited):
    s = connect(limited)
    body = b'{"RegistrationToken": ""}'
    s.sendall(head(length=len(body)) + body)
    awsjson_error(read_response(s), 400, "ValidationException")
    assert closed_within(s, HEADER_TIMEOUT + SLACK), "an idle keep-alive connection is kept forever"


def test_normal_requests_are_served_during_a_slow_client_flood(limited):
    flood = []
    try:
        # Half the connection limit of clients that never finish their headers...
        for _ in range(MAX_CONNECTIONS // 2):
            s = connect(limited)
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
            flood.append(s)
        # ...do not delay anyone else.
        for _ in range(5):
            started = time.monotonic()
            awsjson_error(normal_request(limited), 400, "ValidationException")
            # Not queued behind the flood (that would take a whole header timeout).
            assert time.monotonic() - started < HEADER_TIMEOUT
    finally:
        for s in flood:
            s.close()


def test_a_flood_beyond_the_connection_limit_delays_but_never_drops_others(limited):
    flood = []
    try:
        for _ in range(MAX_CONNECTIONS * 3):
            s = connect(limited)  # the kernel backlog accepts them; the server takes 32 at a time
            s.send(b"POST / HTTP/1.1\r\n")
            flood.append(s)
        started = time.monotonic()
        awsjson_error(normal_request(limited), 400, "ValidationException")
        # Every wave of slow clients is cut off after the header timeout: the queue drains.
        assert time.monotonic() - started < 3 * HEADER_TIMEOUT + 3 * SLACK
    finally:
        for s in flood:
            s.close()
    awsjson_error(normal_request(limited), 400, "ValidationException")


# ---------------------------------------------------------------------------------------------
# Oversized bodies: answered 413, memory bounded


def _stream(s: socket.socket, total: int, chunked: bool) -> None:
    block = b" " * (256 * 1024)
    sent = 0
    try:
        while sent < total:
            if chunked:
                s.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
            else:
                s.sendall(block)
            sent += len(block)
        if chunked:
            s.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and stopped reading (or the test closed the socket)


@pytest.mark.parametrize("size,chunked", [
    (1024 * 1024 + 1, True),       # just over 1 MB, no length
    (100 * 1024 * 1024, False),    # 100 MB declared
    (100 * 1024 * 1024, True),     # 100 MB, chunked, no length
], ids=["1MB+1-chunked", "100MB-declared", "100MB-chunked"])
def test_oversized_body_is_413_and_memory_stays_bounded(limited, size, chunked):
    before = peak_rss_kib(limited)
    s = connect(limited)
    s.sendall(head(length=None if chunked else size))
    sender = threading.Thread(target=_stream, args=(s, size, chunked), daemon=True)
    sender.start()
    s.settimeout(30)
    awsjson_error(read_response(s), 413, "RequestEntityTooLargeException")
    s.close()
    sender.join(timeout=30)
    grown_mib = (peak_rss_kib(limited) - before) / 1024
    assert grown_mib < 32, f"peak memory grew by {grown_mib:.0f} MiB for a {size >> 20} MiB body"
    awsjson_error(normal_request(limited), 400, "ValidationException")


# ---------------------------------------------------------------------------------------------
# Malformed JSON and values at the edges, each with its own clear error


def send_json(server, target: str, body: bytes):
    s = connect(server)
    try:
        s.sendall(head(target, length=len(body)) + body)
        return read_response(s)
    finally:
        s.close()


NOW = str(int(time.time()))
METER = '{"ProductCode":"e2e-ami","Timestamp":%s,"UsageDimension":"%s","UsageQuantity":%s}'

CASES = [
    # (id, target, body, status, __type)
    # Inside an unknown member deep nesting is skipped without recursion; the request then lacks
    # its required members.
    ("deep-nesting-ignored", "MeterUsage", b'{"X":' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400,
     "ValidationException"),
    ("deep-nesting-in-member", "BatchMeterUsage", b'{"UsageRecords":' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400,
     "SerializationException"),
    ("deep-nesting-unclosed", "MeterUsage", b"[" * 500_000, 400, "SerializationException"),
    ("wide-unknown-member", "ResolveCustomer",
     b'{"Unknown":[' + b",".join([b"1"] * 200_000) + b'],"RegistrationToken":""}', 400, "ValidationException"),
    ("duplicate-keys", "ResolveCustomer", b'{"RegistrationToken":"a","RegistrationToken":"b"}', 400,
     "SerializationException"),
    ("nan", "MeterUsage", (METER % ("NaN", "hosts", "1")).encode(), 400, "SerializationException"),
    ("infinity", "MeterUsage", (METER % ("1700000000", "hosts", "Infinity")).encode(), 400, "SerializationException"),
    ("timestamp-1e400", "MeterUsage", (METER % ("1e400", "hosts", "1")).encode(), 400, "SerializationException"),
    ("timestamp-negative-huge", "MeterUsage", (METER % ("-1e300", "hosts", "1")).encode(), 400,
     "SerializationException"),
    ("quantity-2^31", "MeterUsage", (METER % ("1700000000", "hosts", "2147483648")).encode(), 400,
     "ValidationException"),
    ("quantity-2^64", "MeterUsage", (METER % ("1700000000", "hosts", "18446744073709551616")).encode(), 400,
     "SerializationException"),
    ("quantity-negative", "MeterUsage", (METER % ("1700000000", "hosts", "-1")).encode(), 400, "ValidationException"),
    ("quantity-fraction", "MeterUsage", (METER % ("1700000000", "hosts", "1.5")).encode(), 400,
     "SerializationException"),
    ("quantity-exponent", "MeterUsage", (METER % ("1700000000", "hosts", "1e2")).encode(), 400,
     "SerializationException"),
    ("lone-surrogate", "MeterUsage", (METER % ("1700000000", "\\ud800", "1")).encode(), 400, "SerializationException"),
    ("invalid-utf8-in-key", "MeterUsage", b'{"Product\xc3\x28Code":"e2e-ami"}', 400, "SerializationException"),
    ("overlong-utf8", "MeterUsage", b'{"ProductCode":"\xc0\xaf"}', 400, "SerializationException"),
    ("nul-in-string", "MeterUsage", (METER % (NOW, "ho\\u0000sts", "1")).encode(), 400,
     "InvalidUsageDimensionException"),
    ("product-code-non-ascii", "MeterUsage",
     '{"ProductCode":"e2e-amí","Timestamp":1700000000,"UsageDimension":"hosts"}'.encode(), 400, "ValidationException"),
    ("dimension-256-astral", "MeterUsage", (METER % ("1700000000", "\U0001F600" * 256, "1")).encode(), 400,
     "ValidationException"),
    ("decimal-quantity-exponent", "MeterUsage",
     b'{"ProductCode":"e2e-ami","Timestamp":1700000000,"UsageDimension":"hosts","UsageQuantityAsDecimal":"1e3"}', 400,
     "ValidationException"),
    ("decimal-quantity-fullwidth-digit", "MeterUsage",
     '{"ProductCode":"e2e-ami","Timestamp":1700000000,"UsageDimension":"hosts","UsageQuantityAsDecimal":"１"}'.encode(),
     400, "ValidationException"),
]


@pytest.mark.parametrize("target,body,status,code", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_or_edge_json(limited, target, body, status, code):
    awsjson_error(send_json(limited, target, body), status, code)


def test_dimension_of_255_astral_code_points_passes_validation(limited):
    # Lengths are code points: 255 four-byte characters are within UsageDimension's 1-255, so the
    # request gets past validation to the product's dimension check.
    body = (METER % (NOW, "\U0001F600" * 255, "1")).encode()
    awsjson_error(send_json(limited, "MeterUsage", body), 400, "InvalidUsageDimensionException")


# ---------------------------------------------------------------------------------------------
# Header injection


def test_header_values_are_never_reflected_into_response_headers(limited):
    s = connect(limited)
    body = b'{"RegistrationToken": ""}'
    evil = "X-Amz-Date: 2026\x0bX-Injected: 1\r\nContent-Type-Evil: \"}\\\xff\r\n"
    s.sendall(head(length=len(body), extra=evil).replace(b"\xc3\xbf", b"\xff") + body)
    status, headers, doc = read_response(s)
    s.close()
    assert "x-injected" not in headers and "content-type-evil" not in headers, headers
    assert status in (200, 400), (status, doc)


def test_crlf_in_a_header_value_is_refused_by_the_http_layer(limited):
    s = connect(limited)
    # A bare CR inside a header value is not HTTP: refused before any handler runs.
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AWSMPMeteringService.MeterUsage\rX-Evil: 1\r\n"
              b"Content-Length: 2\r\n\r\n{}")
    s.settimeout(10)
    data = s.recv(4096)
    s.close()
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    awsjson_error(normal_request(limited), 400, "ValidationException")
