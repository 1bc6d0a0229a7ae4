"""The HTTP side of TF Serving's REST port: routing, bodies, and the answers of its libevent
server for what never reaches the API.

- a path (with its query) under `/v1/` goes to `RestApi` for GET, POST, HEAD, PUT, DELETE,
  OPTIONS and PATCH (methods other than GET and POST get its 400 `Malformed request`);
- the Prometheus page, when enabled, at its exact path (any query: 400, as TF Serving);
- anything else: libevent's HTML `404 Not Found`; TRACE and CONNECT: `501 Not Implemented`;
  an unknown method: `400 Bad Request`.

Bodies come with Content-Length or chunked, up to 2^31-1 bytes; a `Content-Encoding` naming
gzip is uncompressed first (up to 100 MiB; one that fails to uncompress reads as empty),
as TF Serving's server does. One thread per connection
(keep-alive, HTTP/1.1); `stop` waits for requests in flight, up to its grace period.
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable
from http import HTTPStatus

from serving.rest_api import API_PATH, RestApi

log = logging.getLogger("seqcast.serving")

MAX_BODY_BYTES = 2**31 - 1
MAX_UNCOMPRESSED_BYTES = 100 * 1024 * 1024  # net_http's ZLib::kMaxUncompressedBytes
IDLE_CONNECTION_SECONDS = 60.0  # a keep-alive connection that says nothing is closed

# libevent's evhttp_send_error page.
_ERROR_PAGE = (
    "<HTML><HEAD>\n<TITLE>{code} {reason}</TITLE>\n</HEAD><BODY>\n<H1>{reason}</H1>\n"
    "</BODY></HTML>\n"
)
_ALLOWED = ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH")
_NOT_ALLOWED = ("TRACE", "CONNECT")  # methods libevent knows but TF Serving does not allow


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Client Error" if 400 <= code < 500 else "Server Error"


class _BadBody(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_CONNECTION_SECONDS
    # Headers and body go out in two writes: without this, Nagle's algorithm holds the body
    # back until the client's delayed ACK (40 ms a request).
    disable_nagle_algorithm = True
    server: _HttpServer

    def setup(self):
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, open_=False)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        log.debug("REST %s", format % args)

    def __getattr__(self, name: str):
        # BaseHTTPRequestHandler looks up do_<METHOD>; route every method through one place.
        if name.startswith("do_"):
            method = name[3:]
            return lambda: self._dispatch(method)
        raise AttributeError(name)

    def _target(self) -> str | None:
        """The path with its query, as libevent hands it on (origin or absolute form)."""
        target = self.path.encode("latin-1").decode("utf-8", "surrogateescape")
        if target.startswith("/"):
            return target
        try:
            parts = urllib.parse.urlsplit(target)
        except ValueError:
            return None
        if not parts.scheme:
            return None
        path = parts.path or "/"
        return (
            path
            + (f"?{parts.query}" if parts.query else "")
            + (f"#{parts.fragment}" if parts.fragment else "")
        )

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _BadBody(400) from None
                if size < 0:
                    raise _BadBody(400)
                if size == 0:
                    while self.rfile.readline(65537).strip():  # trailers
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BadBody(413)
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise _BadBody(400)
                chunks.append(chunk)
                self.rfile.readline(3)  # the CRLF after the chunk
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise _BadBody(400) from None
        if size < 0:
            raise _BadBody(400)
        if size > MAX_BODY_BYTES:
            raise _BadBody(413)
        body = self.rfile.read(size)
        if len(body) != size:
            raise _BadBody(400)
        return body

    def _uncompressed(self, body: bytes) -> bytes:
        if "gzip" not in self.headers.get("Content-Encoding", ""):
            return body
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(body, MAX_UNCOMPRESSED_BYTES + 1)
        except zlib.error:
            return b""
        if len(data) > MAX_UNCOMPRESSED_BYTES or not inflater.eof:
            return b""
        return data

    def _send(self, code: int, body: bytes, content_type: str, close: bool = False) -> None:
        self.send_response_only(code, _reason(code))
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_page(self, code: int) -> None:
        """libevent's own error answer (it closes the connection)."""
        page = _ERROR_PAGE.format(code=code, reason=_reason(code)).encode()
        self._send(code, page, "text/html; charset=ISO-8859-1", close=True)

    def _dispatch(self, method: str) -> None:
        with self.server.in_flight():
            try:
                self._answer(method)
            except (ConnectionError, TimeoutError):
                self.close_connection = True
            except Exception:  # noqa: BLE001 - one bad request must not take the server down
                log.exception("REST request failed")
                self.close_connection = True

    def _answer(self, method: str) -> None:
        if method in _NOT_ALLOWED:
            return self._send_page(501)
        if method not in _ALLOWED:
            return self._send_page(400)
        target = self._target()
        if target is None:
            return self._send_page(400)
        try:
            body = self._uncompressed(self._read_body())
        except _BadBody as error:
            return self._send_page(error.code)
        metrics = self.server.metrics_path
        if metrics is not None and target.split("?", 1)[0].split("#", 1)[0] == metrics:
            if target != metrics:
                message = f"Unexpected path: {target}. Should be {metrics}"
                return self._send(400, message.encode("utf-8", "surrogateescape"), "text/plain")
            return self._send(200, self.server.metrics_page().encode(), "text/plain")
        if not API_PATH.fullmatch(target):
            return self._send_page(404)
        reply = self.server.api.handle(method, target, body)
        self._send(reply.status, reply.body, "application/json")


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, api: RestApi, metrics_path, metrics_page):
        self.api = api
        self.metrics_path = metrics_path
        self.metrics_page = metrics_page
        self._busy = 0
        self._idle = threading.Condition()
        self._connections: set[socket.socket] = set()
        if ":" in address[0]:  # an IPv6 address
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._idle:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def close_connections(self) -> None:
        """End keep-alive connections: their threads see the end and exit."""
        with self._idle:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def in_flight(self):
        server = self

        class _Busy:
            def __enter__(self):
                with server._idle:
                    server._busy += 1

            def __exit__(self, *exc):
                with server._idle:
                    server._busy -= 1
                    server._idle.notify_all()

        return _Busy()

    def wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))


class RestServer:
    """TF Serving's REST port: `RestApi` behind an HTTP/1.1 server, with an optional
    Prometheus page. `port=0` picks a free port (see `.port` after `start`)."""

    def __init__(
        self,
        api: RestApi,
        host: str = "127.0.0.1",
        port: int = 8501,
        metrics_path: str | None = None,
        metrics_page: Callable[[], str] | None = None,
    ):
        self.api = api
        self.host = host.strip("[]")  # "[::1]" as gRPC spells it
        self.requested_port = port
        self.port: int | None = None
        self.metrics_path = metrics_path if metrics_page is not None else None
        self.metrics_page = metrics_page
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> RestServer:
        """Bind and serve; OSError when the address cannot be bound."""
        self._server = _HttpServer(
            (self.host, self.requested_port), self.api, self.metrics_path, self.metrics_page
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="rest", kwargs={"poll_interval": 0.2}
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let requests in flight finish (up to `grace` s), close."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.wait_idle(grace)
        self._server.close_connections()
        self._server.server_close()
        self.api.close()
        self._server = None
