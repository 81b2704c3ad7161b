"""JSON-RPC over HTTP to OWS: the one place that talks to the server.

:class:`Transport` owns the ``requests.Session``, the API key and the session
token, and turns every answer into a result or an error of
:mod:`otyspd.errors`. What it takes care of, so that nothing above it has to:

- **Envelope.** ``{"jsonrpc": "2.0", "method", "params", "id"}`` with a fresh
  id per request; the session token goes in as ``params[0]`` (inside each
  call's ``args`` for ``MultiService.execute``, inside the inner request for
  ``LanguageService.wrapRequest``). OWS reports errors inside HTTP 200.
- **Login and relogin.** ``loginByUid`` on first use. On "Access denied;
  please login first/again" (or another session-expired text) it logs in again
  once and repeats the call. Threads share one relogin: the token carries a
  generation number, and only the first thread to see a stale generation
  logs in; the others wait for it and reuse its token.
- **Retries.** Connection errors, timeouts, HTTP 5xx, 429 and malformed
  bodies are retried with exponential backoff and jitter, but only for calls
  that are safe to repeat (reads, or ``idempotent=True``). A write that met
  one of these is never sent again: the error says its outcome is unknown.
  An HTTP 429 is the exception: the server refused the request before doing
  anything, so a write is repeated after the wait as well. ``Retry-After`` is
  honoured on 429 and 503.
- **Pacing.** :class:`Pacer` keeps the session under its request budget
  (350 a minute by default) and slows down or pauses when the
  ``X-Orl-Requests-Remaining`` header runs low, instead of running into 429s.

Clock, sleep and jitter are injectable, so tests never wait for real.
"""

from __future__ import annotations

import collections
import ipaddress
import itertools
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3

from .errors import (
    AccessDenied,
    BadRequest,
    ConfigurationError,
    HTTPStatusError,
    InvalidInput,
    NotFound,
    OtysError,
    OwsError,
    ProtocolError,
    RateLimited,
    RequestTimeout,
    TransportError,
    abbreviate,
    register_secret,
)
from .schema import full_method

__all__ = [
    "DEFAULT_URL",
    "CallResult",
    "Endpoints",
    "Pacer",
    "RetryPolicy",
    "Transport",
    "derive_endpoints",
    "error_from_ows",
    "is_read",
]

log = logging.getLogger(__name__)

DEFAULT_URL = "https://ows.otys.nl/jservice.php"
MULTI = "Otys.Services.MultiService.execute"
WRAP = "Otys.Services.LanguageService.wrapRequest"

# Methods that take no session token (everything else gets it as params[0]).
_TOKENLESS = frozenset({"loginByUid", "login"})
# Methods that are safe to send twice besides the get*/retrieve* family.
_READ_METHODS = frozenset({"check", "logout", "loginByUid", "login"})
_READ_VERBS = frozenset({"getCount", "getOptionLists", "setLanguage"})

# "Access denied; please login first/again" are the texts OWS uses; the others
# are how JSON-RPC servers commonly say that a session has expired.
_SESSION_TEXT = re.compile(
    r"access denied|please log ?in|session (has )?expired|not logged in|invalid session",
    re.IGNORECASE,
)
_NOT_FOUND_TEXT = re.compile(
    r"not found|does not exist|doesn't exist|no such|unknown (record|uid|id)\b|no record",
    re.IGNORECASE,
)
_INPUT_TEXT = re.compile(
    r"field|param|argument|invalid|not allowed|unknown|required|missing|must|"
    r"may not|cannot|can't|not (updatable|insertable|filterable|sortable|listable)|"
    r"option|condition|malformed|wrong|expected|too (long|short|many)",
    re.IGNORECASE,
)
# JSON-RPC's own codes for a request the server could not accept as sent.
_INPUT_CODES = frozenset({-32600, -32601, -32602})


# ---- names and endpoints ----------------------------------------------------


def is_read(method: str) -> bool:
    """Tell whether a call only reads, so that sending it twice does no harm.

    ``get*`` and ``retrieve*`` methods, ``check``, ``setLanguage`` and the
    login methods are reads. A ``LanguageService.wrapRequest`` is as safe as
    the call it wraps, and a ``MultiService.execute`` batch is safe when every
    call in it is; the transport builds both itself and judges them that way.

    >>> is_read("CandidateService.getListEx"), is_read("CandidateService.add")
    (True, False)
    """
    name = full_method(method)
    if name in _READ_METHODS:
        return True
    verb = name.rsplit(".", 1)[-1]
    return verb.startswith(("get", "retrieve")) or verb in _READ_VERBS


@dataclass(frozen=True)
class Endpoints:
    """The three OWS endpoints of one server, all derived from the JSON-RPC url."""

    url: str
    base_url: str
    file_service_url: str
    download_url: str


def derive_endpoints(url: str) -> Endpoints:
    """Check a JSON-RPC url and derive the file endpoints beside it.

    Same scheme, host and folder: ``https://h/x/jservice.php`` gives
    ``https://h/x/fileService.php`` and ``https://h/x/fileServiceDownload``.

    >>> derive_endpoints("https://ows.otys.nl/jservice.php").file_service_url
    'https://ows.otys.nl/fileService.php'
    """
    if (
        not isinstance(url, str)
        or not url.strip()
        or any(c.isspace() for c in url.strip())
    ):
        raise ConfigurationError(
            f"the OWS url must be a string like {DEFAULT_URL!r}, got {url!r}"
        )
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"the OWS url {url!r} is not an http(s) address; use e.g. {DEFAULT_URL!r}"
        )
    if parts.username is not None or parts.password is not None:
        # Not quoted: the url would carry the password into the message.
        raise ConfigurationError(
            "the OWS url carries a user name or password before its host; leave them "
            "out (OWS logs in with the API key), or they would show in logs and reprs"
        )
    try:
        parts.port  # noqa: B018 - a bad port only shows when read
    except ValueError as exc:
        raise ConfigurationError(f"the OWS url {url!r} has a bad port number") from exc

    # The folder is everything up to the last slash; a url ending in "/" is a folder.
    path = parts.path or "/"
    folder = path[: path.rfind("/") + 1]
    endpoint = path if not path.endswith("/") else folder + "jservice.php"
    base = urlunsplit((parts.scheme, parts.netloc, folder, "", ""))
    return Endpoints(
        url=urlunsplit((parts.scheme, parts.netloc, endpoint, parts.query, "")),
        base_url=base,
        file_service_url=base + "fileService.php",
        download_url=base + "fileServiceDownload",
    )


def is_loopback(url: str) -> bool:
    """True when ``url`` points at this machine (127.0.0.0/8, ::1, localhost)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---- errors -----------------------------------------------------------------


def error_from_ows(
    message: Any, code: Any = None, method: str | None = None
) -> OwsError:
    """Map an OWS error object to the exception tree by its message and code.

    Session texts give :class:`AccessDenied`, "not found"-like texts
    :class:`NotFound`, complaints about fields or input :class:`BadRequest`,
    anything else a plain :class:`OwsError`.
    """
    text = str(message)
    if _SESSION_TEXT.search(text):
        return AccessDenied(text, code=code, method=method)
    # A field or parameter that is "not found" is bad input, not a missing record.
    if code in _INPUT_CODES or re.search(r"field|param", text, re.IGNORECASE):
        return BadRequest(text, code=code, method=method)
    if _NOT_FOUND_TEXT.search(text):
        return NotFound(text, code=code, method=method)
    if _INPUT_TEXT.search(text):
        return BadRequest(text, code=code, method=method)
    return OwsError(text, code=code, method=method)


def is_session_error(error: BaseException) -> bool:
    """True for an error that a fresh login may cure (expired or unknown session)."""
    return isinstance(error, AccessDenied) and bool(
        _SESSION_TEXT.search(error.ows_message)
    )


def _short(method: str) -> str:
    return method.removeprefix("Otys.Services.")


def _with_context(error: OtysError, suffix: str) -> OtysError:
    """Append a sentence to an error's message, keeping its type and attributes."""
    error.args = (f"{error}{suffix}", *error.args[1:])
    return error


_UNKNOWN_OUTCOME = (
    "; {method} changes data, so it was not sent again: its outcome is unknown. "
    "Check the record before repeating it."
)


# ---- results of MultiService calls -----------------------------------------


@dataclass(frozen=True)
class CallResult:
    """The outcome of one call inside a ``MultiService.execute`` batch.

    Attributes:
        method: the full method name.
        data: the call's result when it succeeded, else None.
        error: an :class:`~otyspd.errors.OwsError` (or, for an element that
            was malformed before or after sending, an ``InvalidInput`` or
            ``ProtocolError``) when it failed, else None.
    """

    method: str
    data: Any = None
    error: OtysError | None = None

    @property
    def ok(self) -> bool:
        """True when the call succeeded."""
        return self.error is None

    def unwrap(self) -> Any:
        """Return the data, or raise the call's error."""
        if self.error is not None:
            raise self.error
        return self.data

    def __repr__(self) -> str:
        if self.error is not None:
            return f"CallResult({_short(self.method)!r}, error={str(self.error)!r})"
        return f"CallResult({_short(self.method)!r}, data={abbreviate(self.data, 60)})"


# ---- retry policy and pacing ------------------------------------------------


@dataclass
class RetryPolicy:
    """How often and how long to wait before sending a failed request again.

    Attributes:
        retries: extra attempts after the first (0 turns retries off).
        backoff: the first wait in seconds; it doubles on each attempt.
        backoff_max: the longest wait between two attempts.
        max_wait: the longest ``Retry-After`` honoured; a longer one is raised
            as :class:`~otyspd.errors.RateLimited` at once.
        seed: seeds the jitter, for repeatable tests.
    """

    retries: int = 4
    backoff: float = 0.5
    backoff_max: float = 30.0
    max_wait: float = 300.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigurationError(
                f"retries must be an integer >= 0, got {self.retries!r}"
            )
        if not self.backoff >= 0 or not self.backoff_max >= 0 or not self.max_wait >= 0:
            raise ConfigurationError(
                "backoff, backoff_max and max_wait must be >= 0 seconds"
            )
        self._rng = random.Random(self.seed)

    def delay(self, attempt: int) -> float:
        """The wait before attempt ``attempt + 1``: exponential, with jitter in [50%, 100%]."""
        ceiling = min(self.backoff_max, self.backoff * (2**attempt))
        return ceiling * (0.5 + 0.5 * self._rng.random())


class Pacer:
    """Keep one session under its request budget, shared by all its threads.

    A sliding window of send times enforces ``limit`` requests per ``window``
    seconds. The server's ``X-Orl-*`` headers tighten that, since the key's
    budget may be shared with other programs: with ``low_water`` or fewer
    requests left it spreads them over the time left in the server's window,
    and with ``reserve`` or fewer it pauses until that window restarts.

    Args:
        limit: requests allowed per window (None or 0 turns the limiter off).
        window: the window length in seconds.
        reserve: requests left unused for requests already on the wire.
        low_water: requests left below which sending slows down.
        clock: a monotonic clock in seconds.
        sleep: the function that waits.
    """

    def __init__(
        self,
        limit: int | None = 350,
        window: float = 60.0,
        *,
        reserve: int = 1,
        low_water: int = 20,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ConfigurationError(
                f"rate_limit must be a whole number of requests per minute, got {limit!r}"
            )
        self.limit = limit or None
        self.window = float(window)
        self.reserve = reserve
        self.low_water = low_water
        self._clock = clock
        self._sleep = sleep
        self._sent: collections.deque[float] = collections.deque()
        self._paused_until = 0.0
        self._spacing = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until one more request fits the budget; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait_needed(now)
                if wait <= 0:
                    self._sent.append(now)
                    return waited
            self._sleep(wait)
            waited += wait

    def _wait_needed(self, now: float) -> float:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
        if now < self._paused_until:
            return self._paused_until - now
        if self.limit and len(self._sent) >= self.limit:
            return self._sent[0] + self.window - now
        if self._spacing and self._sent and now - self._sent[-1] < self._spacing:
            return self._spacing - (now - self._sent[-1])
        return 0.0

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (after a 429, every thread waits)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Adjust to the server's ``X-Orl-Requests-Remaining`` and timeframe headers."""
        remaining = _number(headers.get("X-Orl-Requests-Remaining"))
        timeframe = _number(headers.get("X-Orl-Remaining-Timeframe"))
        if remaining is None:
            return
        timeframe = timeframe if timeframe is not None else self.window
        with self._lock:
            if remaining <= self.reserve:
                # Out (or all but the reserve): wait for the server's window to restart.
                self._paused_until = max(self._paused_until, self._clock() + timeframe)
                self._spacing = 0.0
                log.info(
                    "OWS says %d requests are left; pausing %.1f s until its window resets",
                    remaining,
                    timeframe,
                )
            elif remaining <= self.low_water:
                # Running low: spread what is left over the rest of the window.
                self._spacing = timeframe / remaining
            else:
                self._spacing = 0.0


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date)."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# ---- the transport ------------------------------------------------------------


class Transport:
    """JSON-RPC calls to one OWS endpoint with one API key.

    Args:
        url: the JSON-RPC endpoint (``.../jservice.php``).
        api_key: the key for ``loginByUid``.
        http: a ``requests.Session`` to use (a new one by default).
        timeout: seconds to wait for an answer (or a ``(connect, read)`` pair).
        retry: the :class:`RetryPolicy`.
        pacer: the :class:`Pacer`.
        verify: TLS verification (True, or a CA bundle path; False only on request).
        sleep: the function that waits between attempts.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        http: requests.Session | None = None,
        timeout: float | tuple[float, float] = 30.0,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        verify: bool | str = True,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ConfigurationError(
                "an API key is needed: pass api_key=... or set OTYS_API_KEY"
            )
        self.endpoints = derive_endpoints(url)
        self.url = self.endpoints.url
        self._api_key = api_key.strip()
        register_secret(self._api_key)
        self.http = http if http is not None else _new_http_session()
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.pacer = pacer if pacer is not None else Pacer()
        self.verify = verify
        self._sleep = sleep
        self._ids = itertools.count(1)

        # The token and its generation change together, under the login lock.
        self._token: str | None = None
        self._generation = 0
        self._login_lock = threading.Lock()
        self._login_attempts = 0
        self._login_error: OtysError | None = None

    # ---- token ---------------------------------------------------------------

    @property
    def token(self) -> str | None:
        """The current session token, or None before login and after logout."""
        return self._token

    def login(self) -> str:
        """Log in with the API key (``loginByUid``) and return the new token."""
        with self._login_lock:
            return self._login_locked()

    def _login_locked(self) -> str:
        payload = self._envelope("loginByUid", [self._api_key])
        try:
            result = self._post(
                payload, "loginByUid", "loginByUid", safe=True, expect_value=False
            )
        except OwsError as exc:
            raise AccessDenied(
                f"login refused: {exc.ows_message}; check the API key (api_key= or "
                "OTYS_API_KEY)",
                code=exc.code,
                method="loginByUid",
            ) from exc

        # OWS answers a bad key with result false rather than an error object.
        if result is False or result is None or result == "":
            raise AccessDenied(
                "the API key was refused (loginByUid answered "
                f"{json.dumps(result)}); check the key passed as api_key= or OTYS_API_KEY",
                method="loginByUid",
            )
        if not isinstance(result, str):
            raise ProtocolError(
                "loginByUid did not answer with a session token but with "
                f"{abbreviate(result)}",
                method="loginByUid",
            )
        register_secret(result)
        self._token = result
        self._generation += 1
        return result

    def current_token(self) -> str:
        """The token to send now, logging in first if there is none.

        For endpoints outside JSON-RPC (the file service) that carry the token
        themselves.
        """
        return self._current()[0]

    def refresh_token(self, refused: str | None) -> str:
        """Log in again after ``refused`` was turned away, unless another caller did.

        Shares the single-flight relogin of :meth:`call`, so concurrent uploads
        and downloads that meet an expired session cause one login, not many.
        """
        with self._login_lock:
            if self._token is not None and self._token != refused:
                return self._token
            generation = self._generation
        return self._relogin(generation)[0]

    def _current(self) -> tuple[str, int]:
        """The token to send and its generation, logging in first if there is none."""
        with self._login_lock:
            if self._token is None:
                self._login_locked()
            return self._token, self._generation  # type: ignore[return-value]

    def _relogin(self, stale_generation: int) -> tuple[str, int]:
        """Log in again unless another thread already did since ``stale_generation``."""
        attempts_seen = self._login_attempts
        with self._login_lock:
            if self._generation != stale_generation and self._token is not None:
                return self._token, self._generation
            # A login that failed while this thread waited fails it too: no pile-up.
            if self._login_attempts != attempts_seen and self._login_error is not None:
                raise self._login_error
            self._login_attempts += 1
            try:
                self._login_locked()
            except OtysError as exc:
                self._login_error = exc
                raise
            self._login_error = None
            log.info("the OWS session had expired; logged in again")
            return self._token, self._generation  # type: ignore[return-value]

    def logout(self) -> None:
        """End the session on the server; quiet when it is already gone."""
        with self._login_lock:
            token, self._token = self._token, None
            self._generation += 1
        if token is None:
            return
        try:
            self._post(
                self._envelope("logout", [token]),
                "logout",
                "logout",
                safe=True,
                expect_value=False,
            )
        except AccessDenied:
            log.debug("logout: the session was already gone")
        except OtysError as exc:
            log.debug("logout failed, the session will expire on its own: %s", exc)

    def close(self) -> None:
        """Log out and close the HTTP connections."""
        self.logout()
        self.http.close()

    # ---- single calls ------------------------------------------------------

    def call(
        self,
        method: str,
        params: list | tuple = (),
        *,
        language: str | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Call one OWS method and return its result.

        Args:
            method: short (``CandidateService.getDetail``) or full name.
            params: the parameters after the session token.
            language: run the call in this content language (wrapRequest).
            idempotent: True if the call may be repeated safely (default: reads only).
        """
        name = full_method(method)
        if name in (MULTI, WRAP):
            raise InvalidInput(
                f"{_short(name)} is not called directly: use session.multi(...) for "
                "batches and session.language(code) for a content language"
            )
        if not isinstance(params, list | tuple):
            raise InvalidInput(f"params must be a list, got {type(params).__name__}")
        params = list(params)
        _encode(params, _short(name))
        wrap = language is not None and _wrappable(name)
        label = f"{_short(name)} [{language}]" if wrap else _short(name)

        def build(token: str | None) -> dict:
            if name in _TOKENLESS:
                return self._envelope(name, params)
            if wrap:
                inner = self._envelope(name, [token, *params])
                return self._envelope(WRAP, [language, inner])
            return self._envelope(name, [token, *params])

        safe = is_read(name) if idempotent is None else bool(idempotent)
        return self._exchange(
            name, label, build, safe=safe, expect_value=_expects_value(name)
        )

    def _exchange(
        self,
        method: str,
        label: str,
        build: Callable[[str | None], dict],
        *,
        safe: bool,
        expect_value: bool,
    ) -> Any:
        """Send a request; on an expired session log in again and repeat it once."""
        if method in _TOKENLESS:
            return self._post(
                build(None), label, method, safe=safe, expect_value=expect_value
            )

        token, generation = self._current()
        try:
            return self._post(
                build(token), label, method, safe=safe, expect_value=expect_value
            )
        except AccessDenied as exc:
            if not is_session_error(exc):
                raise
            first = exc

        # The server refused the request for its session, so repeating it is safe.
        token, generation = self._relogin(generation)
        try:
            return self._post(
                build(token), label, method, safe=safe, expect_value=expect_value
            )
        except AccessDenied as exc:
            if is_session_error(exc):
                raise _with_context(
                    exc,
                    "; logging in again did not help, so the key's user may lack rights",
                ) from first
            raise

    # ---- MultiService -------------------------------------------------------

    def multi(
        self,
        calls: list | tuple | Mapping[str, Any],
        *,
        language: str | None = None,
        idempotent: bool | None = None,
        chunk: int = 50,
    ) -> list[CallResult] | dict[str, CallResult]:
        """Run many calls in ``MultiService.execute`` requests.

        ``calls`` is a list of ``(method, params)`` pairs or a dict of
        name -> ``(method, params)``; the answer has the same shape, with a
        :class:`CallResult` per call. Calls are sent ``chunk`` at a time. A
        call refused because the session expired is repeated once after a
        fresh login; a malformed pair gets an error of its own and is not sent.
        """
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
            raise InvalidInput(f"chunk must be a whole number >= 1, got {chunk!r}")
        keyed = isinstance(calls, Mapping)
        if not keyed and not isinstance(calls, list | tuple):
            raise InvalidInput(
                "multi() takes a list of (method, params) pairs or a dict of "
                f"name -> (method, params), got {type(calls).__name__}"
            )
        items = list(calls.items()) if keyed else list(enumerate(calls))

        # Malformed pairs get their error here and are never sent.
        results: dict[Any, CallResult] = {}
        valid: list[tuple[Any, str, list]] = []
        for key, element in items:
            parsed = _parse_element(key, element, keyed)
            if isinstance(parsed, CallResult):
                results[key] = parsed
            else:
                valid.append((key, *parsed))

        # Send the rest in chunks; then repeat once the calls the session refused.
        generations = []
        for start in range(0, len(valid), chunk):
            part = valid[start : start + chunk]
            done, generation = self._multi_request(part, language, idempotent, keyed)
            results.update(done)
            generations.append(generation)
        # A session can run out in the middle of a batch, and again in the middle of
        # the repeat: log in again while each round lets more calls through.
        refused = [item for item in valid if is_session_error(results[item[0]].error)]
        while refused:
            self._relogin(min(generations))
            generations = []
            for start in range(0, len(refused), chunk):
                part = refused[start : start + chunk]
                done, generation = self._multi_request(
                    part, language, idempotent, keyed
                )
                results.update(done)
                generations.append(generation)
            still = [
                item for item in refused if is_session_error(results[item[0]].error)
            ]
            if len(still) >= len(refused):
                break
            refused = still

        if keyed:
            return {key: results[key] for key, _ in items}
        return [results[key] for key, _ in items]

    def _multi_request(
        self,
        part: list[tuple[Any, str, list]],
        language: str | None,
        idempotent: bool | None,
        keyed: bool,
    ) -> tuple[dict[Any, CallResult], int]:
        """One MultiService.execute request: results by key, and the token generation used."""
        safe = (
            all(is_read(m) for _, m, _ in part)
            if idempotent is None
            else bool(idempotent)
        )
        label = f"MultiService.execute[{len(part)} calls]"
        if language is not None:
            label += f" [{language}]"
        used = []

        def one(token: str | None, method: str, params: list) -> dict:
            if method in _TOKENLESS:
                return {"method": method, "args": params}
            if language is not None and _wrappable(method):
                inner = self._envelope(method, [token, *params])
                return {"method": WRAP, "args": [language, inner]}
            return {"method": method, "args": [token, *params]}

        def build(token: str | None) -> dict:
            used.append(self._generation)
            if keyed:
                calls: Any = {str(key): one(token, m, p) for key, m, p in part}
            else:
                calls = [one(token, m, p) for _, m, p in part]
            return self._envelope(MULTI, [calls])

        answer = self._exchange(MULTI, label, build, safe=safe, expect_value=True)
        return _split_multi_answer(answer, part, keyed, label), used[-1]

    # ---- one HTTP exchange, with retries ---------------------------------------

    def _envelope(self, method: str, params: list) -> dict:
        return {
            "jsonrpc": "2.0",
            "method": method,
            "params": params,
            "id": next(self._ids),
        }

    def _post(
        self, payload: dict, label: str, method: str, *, safe: bool, expect_value: bool
    ) -> Any:
        """POST one JSON-RPC request; retry what may be retried; return the result.

        ``label`` names the request in messages and logs; ``method`` is the full
        name of the call it carries, kept on the errors.
        """
        body = _encode(payload, label)
        attempt = 0
        while True:
            self.pacer.acquire()
            started = time.perf_counter()
            response = None
            try:
                response = self.http.post(
                    self.url,
                    data=body,
                    headers=_JSON_HEADERS,
                    timeout=self.timeout,
                    verify=self.verify,
                )
            except requests.RequestException as exc:
                error, sent, transient = _translate(exc, label, method)
                cause: BaseException | None = exc
            else:
                # On a 429 its Retry-After rules the wait, not the budget headers.
                if response.status_code != 429:
                    self.pacer.observe(response.headers)
                try:
                    result = _read_answer(response, label, method, expect_value)
                except OwsError as exc:
                    _log_call(label, f"OWS error {exc.ows_message!r}", started)
                    raise
                except TransportError as exc:
                    error, cause = exc, None
                    sent, transient = _answer_failure(exc)
                else:
                    _log_call(label, f"ok ({response.status_code})", started)
                    return result
            _log_call(label, _reason(error), started)

            # Repeat a read; repeat a write only when the server cannot have acted on it.
            retryable = transient and (safe or not sent)
            wait = (
                self._wait_before_retry(error, response, attempt) if retryable else None
            )
            if wait is None:
                if sent and not safe:
                    _with_context(error, _UNKNOWN_OUTCOME.format(method=label))
                raise error from cause
            log.info(
                "%s: %s; attempt %d of %d in %.1f s",
                label,
                _reason(error),
                attempt + 2,
                self.retry.retries + 1,
                wait,
            )
            self._sleep(wait)
            attempt += 1

    def _wait_before_retry(
        self, error: OtysError, response: requests.Response | None, attempt: int
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when none is left."""
        if attempt >= self.retry.retries:
            _with_context(error, f" (gave up after {attempt + 1} attempts)")
            return None
        hinted = None
        if response is not None and response.status_code in (429, 503):
            hinted = _retry_after(response.headers)
            if hinted is None and response.status_code == 429:
                frame = _number(response.headers.get("X-Orl-Remaining-Timeframe"))
                hinted = frame + 1 if frame is not None else None
        if hinted is None:
            return self.retry.delay(attempt)
        if hinted > self.retry.max_wait:
            _with_context(
                error,
                f"; the server asks to wait {hinted:g} s, longer than max_wait "
                f"({self.retry.max_wait:g} s)",
            )
            return None
        # Every thread of this session waits out a rate limit, not just this one.
        if response is not None and response.status_code == 429:
            self.pacer.hold(hinted)
        return hinted

    def __repr__(self) -> str:
        state = "logged in" if self._token else "logged out"
        return f"<otyspd Transport {self.url} ({state})>"


_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def _new_http_session() -> requests.Session:
    from . import __version__

    http = requests.Session()
    http.headers["User-Agent"] = f"otyspd/{__version__}"
    return http


def _expects_value(method: str) -> bool:
    """Reads must answer with a value; a null result there is a broken answer."""
    return is_read(method) and method not in ("logout", "login", "loginByUid")


def _wrappable(method: str) -> bool:
    """Calls that may run inside LanguageService.wrapRequest."""
    return (
        method.startswith("Otys.Services.")
        and method not in (MULTI, WRAP)
        and not method.endswith(".setLanguage")
    )


def _log_call(label: str, outcome: str, started: float) -> None:
    log.debug(
        "%s -> %s in %.0f ms", label, outcome, (time.perf_counter() - started) * 1000
    )


def _reason(error: OtysError) -> str:
    if isinstance(error, HTTPStatusError):
        return f"HTTP {error.status}"
    return type(error).__name__


def _json_default(value: Any) -> Any:
    # numpy scalars (from pandas cells) become the Python number they hold.
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} cannot be sent as JSON")


def _encode(payload: Any, label: str) -> bytes:
    """The request body; bad parameters raise InvalidInput before anything is sent."""
    try:
        return json.dumps(payload, allow_nan=False, default=_json_default).encode(
            "utf-8"
        )
    except ValueError as exc:
        raise InvalidInput(
            f"the parameters of {label} contain NaN or infinity, which JSON cannot carry; "
            "use None for a missing value"
        ) from exc
    except TypeError as exc:
        raise InvalidInput(f"the parameters of {label} cannot be sent: {exc}") from exc


def _translate(
    exc: requests.RequestException, label: str, method: str
) -> tuple[TransportError, bool, bool]:
    """Map a requests error to the tree.

    Returns the error, whether the request may have reached the server, and
    whether trying again could help.
    """
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(exc, requests.ConnectTimeout):
        return (
            RequestTimeout(f"{label}: could not connect in time", method=method),
            False,
            True,
        )
    if isinstance(exc, requests.Timeout):
        return RequestTimeout(f"{label}: no answer in time", method=method), True, True
    if isinstance(exc, requests.exceptions.SSLError):
        message = (
            f"{label}: the TLS certificate check failed ({exc}); if the server uses a "
            "private certificate authority, pass verify='/path/to/ca.pem'"
        )
        return TransportError(message, method=method), False, False
    if isinstance(exc, requests.ConnectionError):
        # A refused or unresolvable connection never carried the request.
        sent = not isinstance(reason, urllib3.exceptions.NewConnectionError)
        return (
            TransportError(f"{label}: the connection failed ({exc})", method=method),
            sent,
            True,
        )
    return (
        TransportError(f"{label}: the request failed ({exc})", method=method),
        False,
        False,
    )


def _answer_failure(error: TransportError) -> tuple[bool, bool]:
    """For an unusable answer: (may the server have acted on it, could a retry help)."""
    if isinstance(error, RateLimited):
        return False, True
    if isinstance(error, HTTPStatusError):
        return error.status >= 500, error.status >= 500
    return True, True


def _read_answer(
    response: requests.Response, label: str, method: str, expect_value: bool
) -> Any:
    """Check the HTTP status and the JSON-RPC body; return ``result`` or raise."""
    status = response.status_code
    content = response.content or b""
    if status == 429:
        wait = _retry_after(response.headers)
        raise RateLimited(
            f"{label}: too many requests (HTTP 429"
            + (f", retry after {wait:g} s)" if wait is not None else ")"),
            retry_after=wait,
            method=method,
        )
    if not 200 <= status < 300:
        raise HTTPStatusError(
            f"{label}: HTTP {status} {response.reason or ''}".rstrip()
            + f"; the server sent {_describe(content, response)}",
            status=status,
            method=method,
        )

    # Decode, recognising what commonly comes back instead of JSON-RPC.
    if not content.strip():
        raise ProtocolError(
            f"{label}: the server sent an empty body (HTTP {status})", method=method
        )
    try:
        body = json.loads(content)
    except ValueError:
        raise ProtocolError(
            f"{label}: the server sent {_describe(content, response)} instead of JSON-RPC",
            method=method,
            body=content,
        ) from None
    if not isinstance(body, dict):
        raise ProtocolError(
            f"{label}: the server sent a JSON {type(body).__name__} instead of a JSON-RPC "
            f"object: {abbreviate(body)}",
            method=method,
            body=body,
        )

    # An error object first (OWS sends it with HTTP 200), then the result.
    error = body.get("error")
    if error is not None:
        raise _error_from_body(error, body, label, method)
    if "result" not in body:
        raise ProtocolError(
            f"{label}: the answer has neither 'result' nor 'error' (keys: "
            f"{', '.join(map(str, body)) or 'none'}): {abbreviate(body)}",
            method=method,
            body=body,
        )
    if body["result"] is None and expect_value:
        raise ProtocolError(
            f"{label}: the server answered with result null where a value was expected",
            method=method,
            body=body,
        )
    return body["result"]


def _error_from_body(error: Any, body: dict, label: str, method: str) -> OtysError:
    if isinstance(error, str) and error.strip():
        return error_from_ows(error, None, method)
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message.strip():
            return error_from_ows(message, error.get("code"), method)
    return ProtocolError(
        f"{label}: the server sent an error object without a message: {abbreviate(body)}",
        method=method,
        body=body,
    )


def _describe(content: bytes, response: requests.Response) -> str:
    """Say in a few words what a non-JSON body is."""
    text = content.decode("utf-8", errors="replace")
    kind = response.headers.get("Content-Type", "")
    if not text.strip():
        return "an empty body"
    if "html" in kind.lower() or text.lstrip()[:1] == "<":
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        shown = title.group(1) if title else text
        return f"an HTML page ({abbreviate(shown, 120)})"
    stripped = text.strip()
    if stripped[:1] in "{[" and stripped[-1:] not in "}]":
        return f"JSON cut off after {len(content)} bytes ({abbreviate(text, 120)})"
    return f"a body that is not JSON: {abbreviate(text, 120)}"


def _parse_element(
    key: Any, element: Any, keyed: bool
) -> tuple[str, list] | CallResult:
    """One element of a multi() container as ``(full method, params)``, or its error."""
    where = f"multi() call {key!r}"
    if keyed and not isinstance(key, str):
        return CallResult(
            "",
            error=InvalidInput(
                f"{where}: the names of a dict of calls must be strings"
            ),
        )
    if not isinstance(element, list | tuple) or len(element) != 2:
        return CallResult(
            str(element)[:60],
            error=InvalidInput(
                f"{where} must be a (method, params) pair, got {element!r}"
            ),
        )
    method, params = element
    try:
        name = full_method(method)
    except InvalidInput as exc:
        return CallResult(str(method), error=InvalidInput(f"{where}: {exc}"))
    if name in (MULTI, WRAP):
        return CallResult(
            name, error=InvalidInput(f"{where}: {_short(name)} cannot be nested")
        )
    if params is None:
        params = []
    if not isinstance(params, list | tuple):
        return CallResult(
            name,
            error=InvalidInput(
                f"{where}: params must be a list of the parameters after the token, "
                f"got {type(params).__name__}"
            ),
        )
    try:
        _encode(params, f"{where} ({_short(name)})")
    except InvalidInput as exc:
        return CallResult(name, error=exc)
    return name, list(params)


def _split_multi_answer(
    answer: Any, sent: list[tuple[Any, str, list]], keyed: bool, label: str
) -> dict[Any, CallResult]:
    """Match a MultiService answer to the calls sent; one result per call."""
    # PHP turns an object with keys "0".."n-1" into a list and back; accept both.
    if isinstance(answer, list) and len(answer) == len(sent):
        elements = answer
    elif (
        isinstance(answer, dict) and keyed and all(str(k) in answer for k, _, _ in sent)
    ):
        elements = [answer[str(k)] for k, _, _ in sent]
    elif isinstance(answer, dict) and all(str(i) in answer for i in range(len(sent))):
        elements = [answer[str(i)] for i in range(len(sent))]
    else:
        raise ProtocolError(
            f"{label}: the answer does not match the {len(sent)} calls sent: "
            f"{abbreviate(answer)}",
            method=MULTI,
            body=answer,
        )
    return {
        key: _element_result(element, method)
        for (key, method, _), element in zip(sent, elements, strict=True)
    }


def _element_result(element: Any, method: str) -> CallResult:
    """One element ``{"status": "success", "data": ...}`` or an error, as a CallResult."""
    label = _short(method)
    if not isinstance(element, dict) or "status" not in element:
        return CallResult(
            method,
            error=ProtocolError(
                f"{label}: a MultiService element is not a status object: {abbreviate(element)}",
                method=method,
                body=element,
            ),
        )
    if element["status"] == "success":
        data = element.get("data")
        if data is None and _expects_value(method):
            return CallResult(
                method,
                error=ProtocolError(
                    f"{label}: a MultiService element succeeded without data: "
                    f"{abbreviate(element)}",
                    method=method,
                    body=element,
                ),
            )
        return CallResult(method, data=data)
    message = element.get("message")
    if not isinstance(message, str) or not message.strip():
        message = f"failed with status {element['status']!r} and no message"
    return CallResult(
        method, error=error_from_ows(message, element.get("code"), method)
    )
