"""Loopback servers that misbehave the way real endpoints do, for the CLI's error paths.

``BlackHole``: accepts every TCP connection and never answers (a hung RPC node, a venue
behind a stuck load balancer). Connections are held open until the server stops, so a
client's only way out is its own deadline. ``accepted`` counts connections, and
``wait_for_connection`` lets a test act at the moment a client is inside a request (no
sleeping and hoping).

``FixedAnswer``: an HTTP server answering every request with a fixed status and body
chosen by the request path (``/401``, ``/500``, ``/html``...): an RPC URL whose key was
revoked, a node failing, a captive portal answering 200 with a web page.

Both are threads on 127.0.0.1 with an ephemeral port (stdlib sockets and http.server:
nothing here needs more), usable from sync tests and from a subprocess's point of view.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class BlackHole:
    """Accepts TCP connections and never sends a byte."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self._sock.getsockname()[1]
        self._held: list[socket.socket] = []
        self._cond = threading.Condition()
        self.accepted = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name="blackhole", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BlackHole:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed by stop()
                return
            with self._cond:
                if self._stopped:
                    conn.close()
                    return
                self._held.append(conn)  # read nothing, answer nothing, keep it open
                self.accepted += 1
                self._cond.notify_all()

    def wait_for_connection(self, count: int = 1, timeout: float = 30.0) -> bool:
        """Block until ``count`` connections in total were accepted (False on timeout)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.accepted >= count, timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            held, self._held = self._held, []
        self._sock.close()
        for conn in held:
            conn.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> BlackHole:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# path -> (status, content type, body); anything else is a 404 page
ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "/html": (200, "text/html", b"<html><body>Welcome to the hotel wifi</body></html>"),
    "/401": (401, "application/json", b'{"error": "invalid project id"}'),
    "/403": (403, "text/plain", b"forbidden"),
    "/429": (429, "text/plain", b"too many requests"),
    "/500": (500, "text/plain", b"internal server error"),
    "/502": (502, "text/html", b"<html>bad gateway</html>"),
}


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, ctype, body = ANSWERS.get(self.path.split("?")[0], (404, "text/plain", b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test reads the client's output, not the server's


class FixedAnswer:
    """HTTP on loopback answering each path with ANSWERS[path]."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fixed-answer",
                                        daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> FixedAnswer:
        self._thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
