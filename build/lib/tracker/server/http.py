"""The small part of HTTP/1.1 a tracker needs: parsing a request head strictly, and framing
responses. Bodies come only with `Content-Length` (no chunked uploads); limits are constants.
Whatever a client sends is answered with a 4xx at worst: a 5xx means the tracker is at fault."""

from __future__ import annotations

from typing import NamedTuple

from tracker.errors import TrackerError

MAX_HEAD_BYTES = 8 * 1024  # request line plus headers; announces are well under 1 KiB
MAX_HEADERS = 64
MAX_BODY_BYTES = 1024 * 1024  # a full batch of 1,000 receipts in JSON is about 600 KB
METHODS = (b"GET", b"POST")
VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")

REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_FORWARDING = (b"x-forwarded-for", b"x-real-ip")


class HttpError(TrackerError):
    """A request that is not HTTP this server speaks; answered with `status` and closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RequestHead(NamedTuple):
    """A parsed request line and the few headers the tracker looks at."""

    method: bytes
    target: bytes
    keep_alive: bool
    content_length: int
    content_type: bytes
    expect_continue: bool
    forwarded_for: bytes  # X-Forwarded-For, several headers joined by commas; believed only from
    real_ip: bytes  # X-Real-IP               a trusted proxy (tracker.server.proxies)


def _content_length(value: bytes) -> int:
    value = value.strip()
    if not value.isdigit() or len(value) > 10:
        raise HttpError(400, "malformed Content-Length")
    length = int(value)
    if length > MAX_BODY_BYTES:
        raise HttpError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    return length


def _keep_alive(value: bytes, keep_alive: bool) -> bool:
    tokens = [token.strip() for token in value.split(b",")]
    if b"close" in tokens:
        return False
    return True if b"keep-alive" in tokens else keep_alive


def _forwarding(fields: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    """(X-Forwarded-For, X-Real-IP): several X-Forwarded-For headers are one list, joined by
    commas as HTTP says; a second X-Real-IP is ambiguous and refused."""
    forwarded_for = b",".join([value for name, value in fields if name == b"x-forwarded-for"])
    real_ip = [value.strip() for name, value in fields if name == b"x-real-ip"]
    if len(real_ip) > 1:
        raise HttpError(400, "more than one X-Real-IP")
    return forwarded_for.strip(), real_ip[0] if real_ip else b""


def _headers(block: bytes, keep_alive: bool) -> tuple[bool, int, bytes, bool, bytes, bytes]:
    """(keep_alive, content_length, content_type, expect_continue, forwarded_for, real_ip) from
    the header lines."""
    content_length = -1
    content_type = b""
    expect_continue = False
    forwarding: list[tuple[bytes, bytes]] = []
    lines = block.lower().split(b"\r\n")
    if len(lines) > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} headers")
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or b" " in name or b"\t" in name:
            raise HttpError(400, "malformed header line")
        if name == b"connection":
            keep_alive = _keep_alive(value, keep_alive)
        elif name == b"content-length":
            if content_length >= 0:
                raise HttpError(400, "more than one Content-Length")
            content_length = _content_length(value)
        elif name == b"transfer-encoding":
            raise HttpError(400, "chunked bodies are not accepted; send Content-Length")
        elif name == b"content-type":
            content_type = value.strip()
        elif name == b"expect":
            if value.strip() != b"100-continue":
                raise HttpError(400, "unsupported Expect header")
            expect_continue = True
        elif name in _FORWARDING:
            forwarding.append((name, value))
    forwarded_for, real_ip = _forwarding(forwarding) if forwarding else (b"", b"")
    return keep_alive, max(content_length, 0), content_type, expect_continue, forwarded_for, real_ip


def parse_head(head: bytes) -> RequestHead:
    """Parse a request head (everything before the blank line); raises HttpError."""
    line_end = head.find(b"\r\n")
    request_line = head if line_end < 0 else head[:line_end]
    parts = request_line.split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in VERSIONS:
        raise HttpError(400, "only HTTP/1.1 and HTTP/1.0 are spoken here")
    if method not in METHODS:
        raise HttpError(405, "only GET and POST are allowed")
    if not target.startswith(b"/"):
        raise HttpError(400, "request target must be a path")
    keep_alive = version == b"HTTP/1.1"
    if line_end < 0:
        return RequestHead(method, target, keep_alive, 0, b"", False, b"", b"")
    return RequestHead(method, target, *_headers(head[line_end + 2 :], keep_alive))


def response(status: int, body: bytes, keep_alive: bool, content_type: bytes = b"text/plain") -> bytes:
    """A complete HTTP/1.1 response."""
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s" % (
        status,
        REASONS.get(status, b"Unknown"),
        content_type,
        len(body),
        b"keep-alive" if keep_alive else b"close",
        body,
    )


_OK_KEEP = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n"
)
_OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"


def ok(body: bytes, keep_alive: bool) -> bytes:
    """A 200 response; the announce fast path."""
    return (_OK_KEEP if keep_alive else _OK_CLOSE) % len(body) + body
