"""A scripted stand-in for OWS behind a requests adapter, for transport tests.

No sockets and no waiting: the adapter answers in the calling thread. It
knows login, check, logout, MultiService.execute and LanguageService.wrapRequest;
other methods answer from ``handlers`` (method -> function of the params after
the token). ``script`` queues raw answers (or exceptions) that are used before
the normal ones, to stage failures.
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

URL = "http://ows.test/jservice.php"
KEY = "test-api-key-0123456789"


class Fault(Exception):
    """Raised by a handler to answer with an OWS error object."""

    def __init__(self, message: str, code: Any = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class FakeOWS(BaseAdapter):
    def __init__(self, key: str = KEY) -> None:
        super().__init__()
        self.key = key
        self.requests: list[dict] = []
        self.script: collections.deque[Any] = collections.deque()
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.valid: set[str] = set()
        self.expired: set[str] = set()
        self.logins = 0
        self.headers: dict[str, str] = {}
        self.lock = threading.Lock()
        self.login_answer: Any = None  # None: a fresh token

    # ---- helpers for tests ----------------------------------------------------

    def session(self) -> requests.Session:
        http = requests.Session()
        http.mount("http://ows.test/", self)
        return http

    def expire_all(self) -> None:
        with self.lock:
            self.expired |= self.valid
            self.valid.clear()

    def methods(self) -> list[str]:
        return [r.get("method") for r in self.requests]

    def count(self, method: str) -> int:
        return self.methods().count(method)

    # ---- the adapter ------------------------------------------------------------

    def send(
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        payload = json.loads(request.body)
        with self.lock:
            self.requests.append(payload)
            staged = self.script.popleft() if self.script else None
        if staged is not None:
            if isinstance(staged, BaseException):
                raise staged
            if callable(staged):
                staged = staged(payload)
            if staged is not None:
                return self.response(request, *staged)
        return self.response(request, 200, self.answer(payload))

    def close(self) -> None:
        pass

    def response(
        self,
        request: requests.PreparedRequest,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.reason = {
            200: "OK",
            429: "Too Many Requests",
            500: "Internal Server Error",
        }.get(status, "Error")
        if isinstance(body, bytes):
            content = body
        elif isinstance(body, str):
            content = body.encode()
        else:
            content = json.dumps(body).encode()
        response._content = content
        response.headers = CaseInsensitiveDict({**self.headers, **(headers or {})})
        response.request = request
        response.url = request.url
        response.encoding = "utf-8"
        return response

    # ---- OWS behaviour ---------------------------------------------------------

    def answer(self, payload: dict) -> dict:
        try:
            result = self.run(payload["method"], payload["params"])
        except Fault as fault:
            return {
                "error": {"message": fault.message, "code": fault.code},
                "id": payload["id"],
            }
        return {"result": result, "id": payload["id"]}

    def run(self, method: str, params: list) -> Any:
        if method == "loginByUid":
            return self.login(params)
        if method == "Otys.Services.MultiService.execute":
            return self.multi(params[0])
        if method == "Otys.Services.LanguageService.wrapRequest":
            inner = params[1]
            return self.run(inner["method"], inner["params"])
        self.authorise(params[0] if params else None)
        if method == "check":
            return {
                "clientId": 7,
                "client": "Fake Client",
                "id": 3,
                "username": "fake.user",
                "email": "fake@example.org",
                "contentLanguages": ["nl", "en"],
                "defaultContentLanguage": "nl",
            }
        if method == "logout":
            with self.lock:
                self.valid.discard(params[0])
            return True
        handler = self.handlers.get(method)
        if handler is None:
            raise Fault(f"Unknown method {method}")
        return handler(*params[1:])

    def login(self, params: list) -> Any:
        with self.lock:
            self.logins += 1
            if self.login_answer is not None:
                answer = self.login_answer
                if isinstance(answer, Fault):
                    raise answer
                return answer
            if params != [self.key]:
                return False
            token = f"tok{self.logins:023d}"
            self.valid.add(token)
            return token

    def authorise(self, token: Any) -> None:
        with self.lock:
            if token in self.valid:
                return
            if token in self.expired:
                raise Fault("Access denied; please login again")
        raise Fault("Access denied; please login first")

    def multi(self, calls: Any) -> Any:
        def one(call: dict) -> dict:
            try:
                data = self.run(call["method"], call["args"])
            except Fault as fault:
                return {"status": "error", "message": fault.message, "code": fault.code}
            return {"status": "success", "data": data}

        if isinstance(calls, dict):
            return {key: one(call) for key, call in calls.items()}
        return [one(call) for call in calls]


class Clock:
    """A fake monotonic clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
