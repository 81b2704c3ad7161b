"""The sandbox's HTTP server: endpoints, sessions, rate limit, knobs and faults."""

from __future__ import annotations

import base64
import contextlib
import copy
import email.parser
import email.policy
import html
import json
import logging
import math
import random
import secrets
import socket
import string
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from urllib.parse import quote as url_quote

from ..schema import FieldDef
from .schema import DEFAULT_LANGUAGE, SERVICES
from .seed import churn, seed_store
from .services import (
    LOGIN_AGAIN,
    LOGIN_FIRST,
    Dispatcher,
    is_write,
    object_params,
    short_method,
)
from .store import CODE_ACCESS, Fault, Store, simulated

log = logging.getLogger(__name__)

#: Knobs and their defaults; ``Sandbox.configure`` accepts exactly these names.
DEFAULT_KNOBS: dict[str, Any] = {
    "latency": 0.0,
    "work": 0.0,
    "rate_limit": 350,
    "rate_window": 60.0,
    "session_lifetime": None,
    "expire_after_calls": None,
    "serialize_sessions": True,
    "fault_seed": 0,
    "fault_rate": 0.0,
    "drop_rate": 0.0,
    "malformed_rate": 0.0,
    "fault_after_write": False,
    "fault_methods": None,
    "churn": None,
    "max_upload_bytes": 8 * 1024 * 1024,
}
ALLOWED_UPLOADS = {
    ".pdf": "application/pdf",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".rtf": "application/rtf",
    ".txt": "text/plain",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
}
#: The largest JSON-RPC body the sandbox reads; a longer one gets HTTP 413.
MAX_RPC_BYTES = 32 * 1024 * 1024
#: JSON nested deeper than this is a parse error (PHP's json_decode default depth).
MAX_JSON_DEPTH = 512
_TOKEN_CHARS = string.ascii_lowercase + string.digits
_STATUS_TEXT = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class SessionState:
    """One OWS session (a PHP session id, 26 characters)."""

    token: str
    key: str
    created: float
    last_used: float
    calls: int = 0
    language: str | None = None
    expired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Sandbox:
    """A running sandbox. Made by :func:`otyspd.sandbox.serve`; see the package docs."""

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        api_key: str | None = None,
        records: int = 2000,
        seed: int = 1,
        db: str | None = None,
        username: str = "sandbox",
        password: str | None = None,
        **knobs: Any,
    ) -> None:
        self.api_key = api_key or secrets.token_hex(16)
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.seed = seed
        self.knobs = dict(DEFAULT_KNOBS)
        self._lock = threading.RLock()
        self._sessions: dict[str, SessionState] = {}
        self._windows: dict[str, deque] = {}
        self._stats: dict[str, Any] = {}
        self.reset_stats()
        self._fault_rng = random.Random(0)
        self._churn_rng = random.Random(f"churn-{seed}")
        self.configure(**knobs)

        # Data: seeded once; a file that already holds a seeded tenant is served as it is.
        self.store = Store(db)
        if self.store.meta("seed") is None:
            seed_store(self.store, records=records, seed=seed)
        self.dispatcher = Dispatcher(self)

        self._httpd = _Server((host, port), _Handler)
        self._httpd.sandbox = self
        self.host, self.port = self._httpd.server_address[:2]
        self.base_url = f"http://{self.host}:{self.port}"
        self.url = f"{self.base_url}/jservice.php"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"otyspd-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info("sandbox serving %d candidates on %s", records, self.url)

    def __repr__(self) -> str:
        return f"<otyspd sandbox {self.url}>"

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- control ----------------------------------------------------------------

    def configure(self, **knobs: Any) -> None:
        """Change knobs at runtime (see ``DEFAULT_KNOBS`` for the names)."""
        unknown = set(knobs) - set(DEFAULT_KNOBS)
        if unknown:
            raise TypeError(
                f"unknown sandbox knob(s) {sorted(unknown)}; known: {sorted(DEFAULT_KNOBS)}"
            )
        for name in ("fault_rate", "drop_rate", "malformed_rate"):
            if name in knobs and not 0 <= float(knobs[name]) <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {knobs[name]!r}")
        for name in ("latency", "work"):
            if name in knobs and not float(knobs[name]) >= 0:
                raise ValueError(f"{name} must be seconds >= 0, got {knobs[name]!r}")
        churn_spec = knobs.get("churn")
        if churn_spec is not None and (
            not isinstance(churn_spec, dict)
            or set(churn_spec) - {"add", "change", "delete"}
            or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0
                for n in churn_spec.values()
            )
        ):
            raise ValueError(
                "churn must be a dict with keys add/change/delete and counts >= 0, "
                f"got {churn_spec!r}"
            )
        with self._lock:
            # Check the rates as they would be, so that a refused call changes nothing.
            merged = {**self.knobs, **knobs}
            rates = ("fault_rate", "drop_rate", "malformed_rate")
            if sum(float(merged[k]) for k in rates) > 1:
                raise ValueError(
                    "fault_rate + drop_rate + malformed_rate must not exceed 1"
                )
            self.knobs = merged
            if "fault_seed" in knobs:
                self._fault_rng = random.Random(knobs["fault_seed"])
                self._churn_rng = random.Random(f"churn-{knobs['fault_seed']}")

    def stop(self) -> None:
        """Stop serving: close the listening socket, open connections, threads and the database."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        self._httpd = None
        self.store.close()

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters: requests, calls by method, logins, faults, ..."""
        with self._lock:
            return copy.deepcopy(self._stats)

    def reset_stats(self) -> None:
        """Set every counter of :attr:`stats` back to zero."""
        with self._lock:
            self._stats = {
                "requests": 0,
                "calls": Counter(),
                "logins": 0,
                "failed_logins": 0,
                "logouts": 0,
                "rate_limited": 0,
                "faults": Counter(),
                "churn": 0,
                "uploads": 0,
                "downloads": 0,
            }

    def edit(
        self, service: str, uid: Any, fields: dict, *, language: str = DEFAULT_LANGUAGE
    ) -> None:
        """Change a record as a colleague in the OTYS UI would: no HTTP, no limits.

        Read-only fields may be set too; lastModified moves on.
        """
        self.store.update(_service(service), uid, fields, language, force=True)

    def get(self, service: str, uid: Any, *, language: str = DEFAULT_LANGUAGE) -> dict:
        """One stored record as the nested dict getDetail would send (every field)."""
        table = self.store.tables[_service(service)]
        return table.fetch(uid, table.select(None, listing=False), language)

    # ---- sessions (used by the dispatcher) --------------------------------------------

    def open_session(self, key: str) -> str:
        """Start a session for an API key and return its fresh 26-character token."""
        token = "".join(secrets.choice(_TOKEN_CHARS) for _ in range(26))
        now = time.monotonic()
        with self._lock:
            self._sessions[token] = SessionState(token, key, now, now)
            self._stats["logins"] += 1
        return token

    def close_session(self, token: str) -> None:
        """End a session (logout); its token is unknown from then on."""
        with self._lock:
            self._sessions.pop(token, None)
            self._stats["logouts"] += 1

    def session_of(self, token: Any) -> SessionState | None:
        """The session of a token, expired or not; None for an unknown token."""
        with self._lock:
            return self._sessions.get(token) if isinstance(token, str) else None

    def authenticate(self, token: Any) -> SessionState:
        """The live session of a token, counting the call; else the exact OWS access errors."""
        with self._lock:
            session = self.session_of(token)
            if session is None:
                raise Fault(LOGIN_FIRST, CODE_ACCESS)
            now = time.monotonic()
            lifetime = self.knobs["session_lifetime"]
            if lifetime is not None and now - session.last_used > lifetime:
                session.expired = True
            limit = self.knobs["expire_after_calls"]
            if limit is not None and session.calls >= limit:
                session.expired = True
            if session.expired:
                raise Fault(LOGIN_AGAIN, CODE_ACCESS)
            session.calls += 1
            session.last_used = now
            return session

    def count_call(self, method: str) -> None:
        with self._lock:
            self._stats["calls"][method] += 1

    def count_failed_login(self) -> None:
        with self._lock:
            self._stats["failed_logins"] += 1

    def after_list(self, service: str) -> None:
        """Apply the churn knob after a list page was served."""
        spec = self.knobs["churn"]
        if not spec:
            return
        with self._lock:
            churn(
                self.store,
                service,
                self._churn_rng,
                add=int(spec.get("add", 0)),
                change=int(spec.get("change", 0)),
                delete=int(spec.get("delete", 0)),
            )
            self._stats["churn"] += 1

    # ---- per-request machinery (used by the handler) ---------------------------------------

    def admit(self, bucket: str) -> tuple[bool, dict[str, str], int]:
        """Count a request against the rate limit: (allowed, headers, retry-after seconds)."""
        limit = self.knobs["rate_limit"]
        if limit is None:
            return True, {}, 0
        window = float(self.knobs["rate_window"])
        with self._lock:
            now = time.monotonic()
            stamps = self._windows.setdefault(bucket, deque())
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            allowed = len(stamps) < limit
            if allowed:
                stamps.append(now)
            else:
                self._stats["rate_limited"] += 1
            left = (
                max(1, math.ceil(stamps[0] + window - now)) if stamps else int(window)
            )
            headers = {
                "X-Orl-Limit-Blocked": "0" if allowed else "1",
                "X-Orl-Remaining-Timeframe": str(left),
                "X-Orl-Requests-Remaining": str(max(0, limit - len(stamps))),
            }
            if not allowed:
                headers["Retry-After"] = str(left)
            return allowed, headers, left

    def draw_fault(self, method: str | None) -> tuple[str, int] | None:
        """Pick this request's fault, if any, from the seeded stream (one draw per eligible request)."""
        k = self.knobs
        if not (k["fault_rate"] or k["drop_rate"] or k["malformed_rate"]):
            return None
        only = k["fault_methods"]
        if only is not None and _short_name(method) not in set(only):
            return None
        with self._lock:
            u = self._fault_rng.random()
            variant = self._fault_rng.randrange(3)
        if u < k["fault_rate"]:
            kind = "http"
        elif u < k["fault_rate"] + k["drop_rate"]:
            kind = "drop"
        elif u < k["fault_rate"] + k["drop_rate"] + k["malformed_rate"]:
            kind = "malformed"
        else:
            return None
        with self._lock:
            self._stats["faults"][kind] += 1
        return kind, variant


def _service(name: str) -> str:
    short = name[len("Otys.Services.") :] if name.startswith("Otys.Services.") else name
    if not short.endswith("Service"):
        short += "Service"
    if short not in SERVICES:
        raise KeyError(
            f"the sandbox has no service {name!r}; it has {sorted(SERVICES)}"
        )
    return short


class _Server(ThreadingHTTPServer):
    """A threading server that can close its kept-alive connections on stop."""

    daemon_threads = True
    allow_reuse_address = True
    sandbox: Sandbox

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self._open_lock:
            self._open.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (or a connection cut by stop()) is not a server
        # fault: no traceback on stderr for it.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _short_name(method: Any) -> str:
    """The short name of a method, or "" when it is not a usable name (never raises)."""
    if not isinstance(method, str) or not method:
        return ""
    return short_method(method)


def _token_of(request: Any) -> Any:
    """The session token a JSON-RPC request carries (inside MultiService and wraps too)."""
    if not isinstance(request, dict):
        return None
    params = request.get("params")
    if isinstance(params, dict):
        params = object_params(params)
    if not isinstance(params, list) or not params:
        return None
    method = _short_name(request.get("method"))
    if method == "LanguageService.wrapRequest" and len(params) > 1:
        return _token_of(params[1])
    if method == "MultiService.execute":
        calls = params[0]
        calls = list(calls.values()) if isinstance(calls, dict) else calls
        for call in calls if isinstance(calls, list) else []:
            if isinstance(call, dict):
                return _token_of(
                    {"method": call.get("method"), "params": call.get("args")}
                )
        return None
    return params[0]


def _parse(raw: bytes) -> Any:
    """The JSON value of a body, or None when PHP's json_decode would refuse it.

    Refused: text that is not JSON or not UTF-8, NaN and Infinity (not JSON),
    and nesting deeper than :data:`MAX_JSON_DEPTH`.
    """
    try:
        value = json.loads(raw, parse_constant=_no_constant)
        if _too_deep(value):
            return None
        return _utf8_only(value)
    except (ValueError, RecursionError):  # a UnicodeError is a ValueError
        return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _too_deep(value: Any) -> bool:
    """Whether arrays and objects nest deeper than MAX_JSON_DEPTH (counted without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > MAX_JSON_DEPTH:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _utf8_only(request: Any) -> Any:
    """The parsed request; ValueError when a string in it escapes a lone surrogate.

    JSON lets ``"\\ud800"`` through, but the text it stands for is not UTF-8, and
    the server's JSON decoder refuses such a body as a whole.
    """
    json.dumps(request, ensure_ascii=False).encode("utf-8")
    return request


def _writes(request: Any) -> bool:
    """Whether a JSON-RPC request would change data (looking inside batches and wraps)."""
    if not isinstance(request, dict):
        return False
    method = _short_name(request.get("method"))
    if not method:
        return False
    params = request.get("params") or []
    if (
        method == "LanguageService.wrapRequest"
        and isinstance(params, list)
        and len(params) > 1
    ):
        return _writes(params[1])
    if method == "MultiService.execute" and isinstance(params, list) and params:
        calls = params[0]
        calls = list(calls.values()) if isinstance(calls, dict) else calls
        return any(
            _writes({"method": c.get("method"), "params": c.get("args")})
            for c in (calls if isinstance(calls, list) else [])
            if isinstance(c, dict)
        )
    return is_write(method)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    _answered = False
    server_version = "otyspd-sandbox"
    # Headers and body go out in separate writes; without this, Nagle's algorithm
    # and the client's delayed ACK add about 40 ms to every kept-alive request.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines carry tokens in legacy download URLs: keep them out of logs.
        log.debug("sandbox %s", self.command)

    @property
    def sandbox(self) -> Sandbox:
        return self.server.sandbox

    # ---- routing ----------------------------------------------------------------------

    def do_POST(self) -> None:
        self._guarded(self._route_post)

    def do_GET(self) -> None:
        self._guarded(self._route_get)

    def _guarded(self, route: Any) -> None:
        """Run a route; a sandbox bug still gets an answer (and a log entry), never a cut connection."""
        self._answered = False
        try:
            route()
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as exc:
            log.exception(
                "sandbox failed on %s %s", self.command, urlsplit(self.path).path
            )
            if self._answered:
                self.close_connection = True
                return
            message = f"Internal sandbox error: {type(exc).__name__}: {exc}"
            self.close_connection = True
            self._json(
                500 if not urlsplit(self.path).path.endswith("/jservice.php") else 200,
                {"error": {"message": message, "code": -32603}, "id": None},
                {"Connection": "close"},
            )

    def _route_post(self) -> None:
        path = urlsplit(self.path).path
        if path.endswith("/jservice.php"):
            self._rpc()
        elif path.endswith("/fileService.php"):
            self._upload()
        else:
            self._send(404, b"Not found", "text/plain")

    def _route_get(self) -> None:
        parts = urlsplit(self.path)
        if parts.path.endswith("/fileServiceDownload"):
            self._download(parse_qs(parts.query))
        elif parts.path.rstrip("/").endswith("/info") or parts.path.endswith(
            "/info/index.php"
        ):
            self._info_index()
        elif parts.path.endswith("/info/detail.php"):
            self._info_detail(parse_qs(parts.query))
        elif parts.path.endswith("/jservice.php"):
            self._json(
                200,
                {
                    "error": {
                        "message": simulated("Use POST for JSON-RPC"),
                        "code": -32600,
                    },
                    "id": None,
                },
            )
        else:
            self._send(404, b"Not found", "text/plain")

    # ---- plumbing -----------------------------------------------------------------------

    def _content_length(self) -> int | str:
        """The declared body length in bytes, or what is wrong with the headers."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return "chunked bodies are not read; send the body with a Content-Length"
        given = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not given:
            return "the Content-Length header is missing"
        if len(given) > 1:
            return "Content-Length is given twice with different values"
        text = given.pop()
        if not (text.isascii() and text.isdigit()):
            return f"Content-Length must be a number of bytes, got {text[:40]!r}"
        return int(text) if len(text) <= 18 else 10**18

    def _body(self, limit: int) -> bytes | tuple[int, str]:
        """The request body, or (HTTP status, problem) when it cannot be read.

        After a problem the connection is closed: where the next request would
        start is unknown.
        """
        length = self._content_length()
        if isinstance(length, str):
            self.close_connection = True
            return 400, f"Bad request: {length}"
        if length > limit:
            self.close_connection = True
            return 413, f"Request too large: {length} bytes; the limit is {limit}"
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._answered = True
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection and "Connection" not in (headers or {}):
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._send(status, body, "application/json; charset=utf-8", headers)

    def _count_request(self) -> None:
        with self.sandbox._lock:
            self.sandbox._stats["requests"] += 1

    def _bucket(self, token: Any, login_key: Any = None) -> str:
        session = self.sandbox.session_of(token)
        if session is not None:
            return "key:" + session.key
        if isinstance(login_key, str) and login_key == self.sandbox.api_key:
            return "key:" + login_key
        return "anonymous:" + self.client_address[0]

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _http_fault(self, variant: int, headers: dict[str, str]) -> None:
        status = (500, 502, 503)[variant]
        text = _STATUS_TEXT[status]
        body = (
            f"<html><head><title>{status} {text}</title></head><body>"
            f"<h1>{status} {text}</h1><p>The sandbox injected this fault.</p></body></html>"
        ).encode()
        self.close_connection = True
        self._send(
            status, body, "text/html; charset=utf-8", {**headers, "Connection": "close"}
        )

    # ---- JSON-RPC -------------------------------------------------------------------------

    def _rpc(self) -> None:
        sb = self.sandbox
        raw = self._body(MAX_RPC_BYTES)
        self._count_request()
        if isinstance(raw, tuple):
            status, problem = raw
            self._json(
                status,
                {"error": {"message": simulated(problem), "code": -32700}, "id": None},
            )
            return
        request = _parse(raw)

        # Rate limit first: a refused request does not run and draws no fault.
        method = request.get("method") if isinstance(request, dict) else None
        token = _token_of(request)
        params = request.get("params") if isinstance(request, dict) else None
        login_key = (
            params[0]
            if method == "loginByUid" and isinstance(params, list) and params
            else None
        )
        allowed, headers, retry = sb.admit(self._bucket(token, login_key))
        if not allowed:
            self._json(
                429,
                {
                    "error": {
                        "message": simulated(
                            f"Too many requests; retry after {retry} s"
                        ),
                        "code": 429,
                    }
                },
                headers,
            )
            return

        # The fault is chosen before the method runs; a write may still run first (fault_after_write).
        fault = sb.draw_fault(method) if isinstance(request, dict) else None
        run_first = (
            fault is None or not _writes(request) or sb.knobs["fault_after_write"]
        )
        session = sb.session_of(token)
        lock = (
            session.lock
            if session is not None and sb.knobs["serialize_sessions"]
            else None
        )
        # Latency stands for the network, which PHP's session lock does not cover.
        if sb.knobs["latency"]:
            time.sleep(float(sb.knobs["latency"]))
        if lock is not None:
            lock.acquire()
        try:
            if sb.knobs["work"]:
                time.sleep(float(sb.knobs["work"]))
            payload = self._answer(request) if run_first else None
        finally:
            if lock is not None:
                lock.release()

        if fault is None:
            self._json(200, payload, headers)
            return
        kind, variant = fault
        if kind == "http":
            self._http_fault(variant, headers)
        elif kind == "drop":
            self._drop()
        else:
            full = (
                json.dumps(payload).encode()
                if payload is not None
                else b'{"result":{"listOutput":[{"uid":"'
            )
            body = (
                full[: max(1, len(full) // 2)],
                b"",
                b"<br />\n<b>Fatal error</b>: Allowed memory size exhausted in <b>Service.php</b><br />\n",
            )[variant]
            self._send(200, body, "application/json; charset=utf-8", headers)

    def _answer(self, request: Any) -> dict:
        """The JSON-RPC response object for a parsed request."""
        if not isinstance(request, dict):
            return {
                "error": {
                    "message": simulated(
                        "Parse error: the body is not a JSON-RPC object "
                        f"(valid JSON text in UTF-8, nested at most {MAX_JSON_DEPTH} deep)"
                    ),
                    "code": -32700,
                },
                "id": None,
            }
        rid = request.get("id")
        try:
            if "method" not in request:
                raise Fault(simulated("Invalid request: no 'method'"), -32600)
            result = self.sandbox.dispatcher.call(
                request["method"], request.get("params")
            )
            return {"result": result, "id": rid}
        except Fault as fault:
            return {"error": {"message": fault.message, "code": fault.code}, "id": rid}
        except Exception as exc:  # a sandbox bug: say so loudly, in the OWS envelope
            log.exception("sandbox failed on %s", request.get("method"))
            return {
                "error": {
                    "message": f"Internal sandbox error: {type(exc).__name__}: {exc}",
                    "code": -32603,
                },
                "id": rid,
            }

    # ---- files --------------------------------------------------------------------------------

    def _admit_file_session(self, token: Any, *, refused_status: int) -> dict | None:
        """Rate-limit and authenticate a file request; None once it was answered.

        Uploads report a refused session in HTTP 200 (as JSON-RPC does), downloads
        with ``refused_status`` 403.
        """
        sb = self.sandbox
        allowed, headers, _retry = sb.admit(self._bucket(token))
        if not allowed:
            self._json(
                429,
                {"error": {"message": simulated("Too many requests"), "code": 429}},
                headers,
            )
            return None
        try:
            sb.authenticate(token)
        except Fault as fault:
            self._file_error(fault.message, refused_status, headers)
            return None
        return headers

    def _file_error(
        self, message: str, status: int = 200, headers: dict | None = None
    ) -> None:
        self._json(
            status,
            {
                "error": {
                    "message": message,
                    "code": 0 if "Access denied" in message else 400,
                }
            },
            headers,
        )

    def _upload(self) -> None:
        sb = self.sandbox
        self._count_request()
        limit = int(sb.knobs["max_upload_bytes"])
        raw = self._body(limit * 2 + 1_000_000)
        if isinstance(raw, tuple):
            status, problem = raw
            if status == 413:  # what PHP says when post_max_size is exceeded
                problem = f"File too large; the limit is {limit} bytes"
                status = 200
            self._file_error(simulated(problem), status)
            return
        parts = _multipart(self.headers.get("Content-Type", ""), raw)
        if parts is None:
            self._file_error(
                simulated(
                    "Upload refused: the body is not multipart/form-data with a "
                    "boundary that matches the Content-Type header; send the parts "
                    "'sessionId' and 'file'"
                )
            )
            return
        # A field sent twice counts once, with its last value, as in PHP's $_POST.
        sessions = [
            (p.get_payload(decode=True) or b"").decode("utf-8", "replace").strip()
            for p in parts
            if p.get_param("name", header="content-disposition") == "sessionId"
            and p.get_filename() is None
        ]
        token = sessions[-1] if sessions else None
        headers = self._admit_file_session(token, refused_status=200)
        if headers is None:
            return
        files = [p for p in parts if p.get_filename() is not None]
        if not files:
            self._file_error(
                simulated("No file received; send it in a multipart part named 'file'"),
                headers=headers,
            )
            return
        # All or nothing: every part is checked before any is stored.
        accepted = []
        seen: Counter = Counter(
            p.get_param("name", header="content-disposition") or "file" for p in files
        )
        repeated = sorted(name for name, n in seen.items() if n > 1)
        if repeated:
            self._file_error(
                simulated(
                    f"Upload refused: the field name {repeated[0]!r} is used by "
                    f"{seen[repeated[0]]} files; give each file its own field name "
                    "(file, file2, ...). Nothing was stored"
                ),
                headers=headers,
            )
            return
        for part in files:
            name = part.get_filename()
            data = part.get_payload(decode=True) or b""
            ext = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
            problem = None
            if not data:
                problem = f"File {name!r} is empty"
            elif len(data) > limit:
                problem = f"File {name!r} is too large ({len(data)} bytes; the limit is {limit})"
            elif ext not in ALLOWED_UPLOADS:
                problem = f"File type {ext or '(none)'!r} of {name!r} is not allowed; allowed: {', '.join(sorted(ALLOWED_UPLOADS))}"
            if problem:
                if len(files) > 1:
                    problem += f"; none of the {len(files)} files was stored"
                self._file_error(simulated(problem), headers=headers)
                return
            field_name = part.get_param("name", header="content-disposition") or "file"
            accepted.append((field_name, name, ALLOWED_UPLOADS[ext], data))
        answer = {}
        now = int(time.time())
        with sb.store.lock:
            rows = [(sb.store.new_uid(), *item) for item in accepted]
            sb.store.conn.executemany(
                "INSERT INTO files (ouid, name, mime, size, data, created) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (ouid, name, mime, len(data), data, now)
                    for ouid, _field, name, mime, data in rows
                ],
            )
        for ouid, field_name, name, mime, data in rows:
            answer[field_name] = {
                "ouid": ouid,
                "name": name,
                "mimeType": mime,
                "size": len(data),
            }
        with sb._lock:
            sb._stats["uploads"] += len(answer)
        self._json(200, answer, headers)

    def _download(self, query: dict) -> None:
        sb = self.sandbox
        self._count_request()
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        token = (
            cookie["PHPSESSID"].value
            if "PHPSESSID" in cookie
            else (query.get("sessionId") or [None])[0]
        )
        headers = self._admit_file_session(token, refused_status=403)
        if headers is None:
            return
        ouid = (query.get("ouid") or [None])[0]
        kind = (query.get("class") or [None])[0]
        if kind != "AttachedDocument":
            self._file_error(
                simulated(
                    f"Unknown class {kind!r}; the sandbox serves class=AttachedDocument"
                ),
                400,
                headers,
            )
            return
        row = sb.store.one("SELECT name, mime, data FROM files WHERE ouid = ?", (ouid,))
        if row is None:
            self._file_error(
                simulated(f"File not found: no file with ouid {ouid!r}"), 404, headers
            )
            return
        name, mime, data = row
        ascii_name = name.encode("ascii", "replace").decode().replace('"', "_")
        disposition = (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{url_quote(name)}"
        )
        with sb._lock:
            sb._stats["downloads"] += 1
        self._send(200, data, mime, {**headers, "Content-Disposition": disposition})

    # ---- field definition pages -------------------------------------------------------------------

    def _authorised(self) -> bool:
        sb = self.sandbox
        expected = base64.b64encode(f"{sb.username}:{sb.password}".encode()).decode()
        given = self.headers.get("Authorization", "")
        if given.startswith("Basic ") and secrets.compare_digest(
            given[6:].strip(), expected
        ):
            return True
        self._send(
            401,
            b"Authorization required",
            "text/plain",
            {"WWW-Authenticate": 'Basic realm="OWS info"'},
        )
        return False

    def _info_index(self) -> None:
        self._count_request()
        if not self._authorised():
            return
        items = "".join(
            f'<li><a href="detail.php?service=Otys.Services.{name}">Otys.Services.{name}</a></li>'
            for name in sorted(SERVICES)
        )
        page = f"<html><head><title>OWS services (sandbox)</title></head><body><h1>Services</h1><ul>{items}</ul></body></html>"
        self._send(200, page.encode(), "text/html; charset=utf-8")

    def _info_detail(self, query: dict) -> None:
        self._count_request()
        if not self._authorised():
            return
        name = (query.get("service") or [""])[0]
        try:
            service = _service(name)
        except KeyError:
            self._send(
                404,
                f"Unknown service {html.escape(name)}".encode(),
                "text/html; charset=utf-8",
            )
            return
        self._send(200, field_table(service).encode(), "text/html; charset=utf-8")


FIELD_COLUMNS = (
    ("Name", "name"),
    ("Type", "type"),
    ("Listable", "listable"),
    ("Filterable", "filterable"),
    ("Sortable", "sortable"),
    ("Updatable", "updatable"),
    ("Obligatory", "obligatory"),
    ("Deletable", "deletable"),
    ("Insertable", "insertable"),
    ("Has options", "has_options"),
    ("Not empty", "not_empty"),
    ("In list by default", "in_list_by_default"),
    ("Data type comment", "type_comment"),
    ("Comment", "comment"),
)


def field_table(service: str) -> str:
    """The field definition page of a service: one table row per field."""

    def cell(f: FieldDef, attr: str) -> str:
        value = getattr(f, attr)
        return (
            ("yes" if value else "no")
            if isinstance(value, bool)
            else html.escape(str(value))
        )

    head = "".join(f"<th>{title}</th>" for title, _ in FIELD_COLUMNS)
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{cell(f, attr)}</td>" for _, attr in FIELD_COLUMNS)
        + "</tr>"
        for f in SERVICES[service].fields
    )
    return (
        f"<html><head><title>Otys.Services.{service}</title></head><body>"
        f"<h1>Otys.Services.{service}</h1>"
        f'<table class="fields"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        "</body></html>"
    )


def _multipart(content_type: str, raw: bytes) -> list | None:
    """The parts of a multipart/form-data body; None when it is not one or its boundary does not match."""
    if "multipart/form-data" not in content_type.lower() or "\n" in content_type:
        return None
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode(
        "utf-8", "replace"
    )
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    return list(message.iter_parts()) if message.is_multipart() else None


__all__ = [
    "DEFAULT_KNOBS",
    "FIELD_COLUMNS",
    "Sandbox",
    "SessionState",
    "field_table",
]
