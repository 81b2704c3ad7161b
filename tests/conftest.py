"""Shared fixtures: sandboxes on 127.0.0.1, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from otyspd.sandbox import Sandbox, serve

SMALL = 300


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """A factory: ``make_sandbox(records=..., **knobs)`` starts a sandbox, stopped after the test."""
    started: list[Sandbox] = []

    def make(**options: Any) -> Sandbox:
        options.setdefault("records", SMALL)
        srv = serve(**options)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A fresh small sandbox (300 candidates, seed 1, default knobs)."""
    return make_sandbox()


class RawOws:
    """Raw JSON-RPC over HTTP against a sandbox, for tests that check the wire."""

    def __init__(self, srv: Sandbox) -> None:
        self.srv = srv
        self.http = requests.Session()
        self.token: str | None = None

    def post(self, body: Any, **kwargs: Any) -> requests.Response:
        """POST a JSON body (any shape) to /jservice.php."""
        return self.http.post(self.srv.url, json=body, timeout=30, **kwargs)

    def call(self, method: str, *params: Any, id: Any = 1) -> dict:
        """One call; returns the whole response object (``result`` or ``error``)."""
        body = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": id}
        response = self.post(body)
        assert response.status_code == 200, response.text
        return response.json()

    def result(self, method: str, *params: Any) -> Any:
        """The result of a call with the token inserted first; fails on an error."""
        answer = self.call(method, self.token, *params)
        assert "error" not in answer, answer
        return answer["result"]

    def login(self) -> str:
        self.token = self.call("loginByUid", self.srv.api_key)["result"]
        return self.token

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def ows(sandbox: Sandbox) -> Iterator[RawOws]:
    """A logged-in raw JSON-RPC client of the ``sandbox`` fixture."""
    client = RawOws(sandbox)
    client.login()
    yield client
    client.close()
