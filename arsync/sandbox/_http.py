"""A tiny threaded HTTP/1.1 server with a route table, shared by the sandbox emulators.

The emulators are plain functions from :class:`Request` to :class:`Response`; this module only
does the socket work. Keep-alive is supported (HTTP/1.1 with Content-Length) so that SDK sessions
reuse connections as they would against the real services.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Headers(dict[str, str]):
    """Case-insensitive header mapping (keys stored lower-case)."""

    def __init__(self, items: dict[str, str] | None = None) -> None:
        super().__init__()
        for k, v in (items or {}).items():
            self[k] = v

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # path parameters from the route

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter, matched case-insensitively (as both APIs do)."""
        for key, values in self.query.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return default

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None,
             content_type: str = "application/json") -> Response:
        body = json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")
        h = {"Content-Type": f"{content_type};charset=UTF-8"}
        h.update(headers or {})
        return cls(status, body, h)

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> Response:
        return cls(status, text.encode("utf-8"), {"Content-Type": content_type})


Handler = Callable[[Request], Response]


class Router:
    """Routes ``(method, path-regex)`` to handlers; the first match wins."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(f"^{pattern}$", re.IGNORECASE), handler))

    def __call__(self, request: Request) -> Response:
        path_matched = False
        for method, pattern, handler in self._routes:
            m = pattern.match(request.path)
            if not m:
                continue
            path_matched = True
            if method != request.method:
                continue
            request.params = m.groupdict()
            return handler(request)
        if path_matched:
            return Response.text("Method Not Allowed", 405)
        return Response.text("Not Found", 404)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a keep-alive client's delayed ACK
    # stalls every response by ~40 ms. TCP_NODELAY sends both at once.
    disable_nagle_algorithm = True
    app: Handler  # set on the per-server subclass

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=Headers(dict(self.headers.items())),
            body=body,
        )
        try:
            response = self.app(request)
        except Exception as exc:  # an emulator bug must show as a 500, not a hung socket
            response = Response.text(f"sandbox error: {exc!r}", 500)
        self.send_response(response.status)
        for k, v in response.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class SandboxServer:
    """Serves one emulator on a loopback port in a background thread.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. ``port=0`` picks a free port.
    """

    def __init__(self, app: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        handler_cls = type("_Bound", (_RequestHandler,), {"app": staticmethod(app)})
        self._httpd = ThreadingHTTPServer((host, port), handler_cls)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        # A short poll interval: stop() waits for it, and tests start and stop many servers.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True,
                                        name=f"sandbox{self.url}")
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
