"""Shared fixtures: sandboxes on 127.0.0.1, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

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
