"""Every error otyspd raises, in one tree.

Catch :class:`OtysError` to catch them all. The leaves also subclass the
builtin exception a caller would naturally catch, so ``except ValueError``
still sees bad input and ``except TimeoutError`` still sees a timeout::

    OtysError
    ├── ConfigurationError (ValueError)     missing API key, bad URL, bad option
    ├── InvalidInput (ValueError)           rejected on our side, before any request
    ├── TransportError (ConnectionError)    the request did not get a usable answer
    │   ├── RequestTimeout (TimeoutError)   no answer in time
    │   ├── HTTPStatusError                 an HTTP status other than 200
    │   │   └── RateLimited                 HTTP 429, carries ``retry_after``
    │   └── ProtocolError (ValueError)      a body that is not the JSON-RPC we expect
    │       └── SchemaDriftError            one field came in several shapes (frames)
    ├── OwsError                            the server answered with an error object
    │   ├── AccessDenied (PermissionError)  login failed, or a relogin did not help
    │   ├── NotFound (LookupError)          the record does not exist
    │   └── BadRequest (ValueError)         the server refused the input
    ├── IncompleteRead                      a paged read stopped; carries the rows so far
    ├── DriftError                          records moved while reading (strict mode)
    └── FileTransferError (OSError)         an upload or download could not complete

Conflicts in a write-back are not raised: they are rows of its report, with
status ``conflict``, so that the other changes still go through. Warnings
(``DriftWarning``, ``UnknownOptionWarning``) report recoverable data problems.

Messages never contain the API key or a session token: every message that
quotes a server body goes through :func:`redact` first.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "AccessDenied",
    "BadRequest",
    "ConfigurationError",
    "DriftError",
    "FileTransferError",
    "HTTPStatusError",
    "IncompleteRead",
    "InvalidInput",
    "NotFound",
    "OtysError",
    "OwsError",
    "ProtocolError",
    "RateLimited",
    "RequestTimeout",
    "TransportError",
    "abbreviate",
    "redact",
]

_SECRETS: set[str] = set()
_EXCERPT = 200


def register_secret(value: str | None) -> None:
    """Remember a secret (API key, session token) so that :func:`redact` hides it."""
    if value and len(value) >= 6:
        _SECRETS.add(str(value))


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


def abbreviate(body: Any, limit: int = _EXCERPT) -> str:
    """Show a response body in one short, secret-free line for an error message."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    text = re.sub(r"\s+", " ", str(body)).strip()
    text = redact(text)
    if not text:
        return "an empty body"
    if len(text) > limit:
        return repr(text[:limit]) + f" ... ({len(text)} characters)"
    return repr(text)


class OtysError(Exception):
    """Base class of every otyspd error."""

    def __init__(self, message: str = "", *args: Any) -> None:
        super().__init__(redact(str(message)), *args)

    def __str__(self) -> str:
        return redact(super().__str__())


class ConfigurationError(OtysError, ValueError):
    """The session cannot be set up as asked (missing key, bad URL, bad option)."""


class InvalidInput(OtysError, ValueError):
    """Input rejected by otyspd before anything was sent.

    ``problems`` lists each problem found (a row, a column, what is wrong), so
    that one error reports all of them at once.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = [redact(str(p)) for p in problems or []]
        if self.problems:
            shown = "\n  - ".join(self.problems[:20])
            more = len(self.problems) - 20
            message = f"{message}\n  - {shown}"
            if more > 0:
                message += f"\n  ... and {more} more"
        super().__init__(message)


class TransportError(OtysError, ConnectionError):
    """The request did not get a usable answer from the server."""

    def __init__(self, message: str, *, method: str | None = None) -> None:
        self.method = method
        super().__init__(message)


class RequestTimeout(TransportError, TimeoutError):
    """The server did not answer in time."""


class HTTPStatusError(TransportError):
    """The server answered with an HTTP status other than 200."""

    def __init__(self, message: str, *, status: int, method: str | None = None) -> None:
        self.status = status
        super().__init__(message, method=method)


class RateLimited(HTTPStatusError):
    """HTTP 429: too many requests. ``retry_after`` is in seconds, if the server said."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        method: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=429, method=method)


class ProtocolError(TransportError, ValueError):
    """The body is not the JSON-RPC answer expected (HTML, truncated, null result)."""

    def __init__(
        self, message: str, *, method: str | None = None, body: Any = None
    ) -> None:
        self.excerpt = abbreviate(body) if body is not None else None
        super().__init__(message, method=method)


class OwsError(OtysError):
    """The server answered with a JSON-RPC error object.

    Attributes:
        code: the ``code`` the server sent (often 0).
        ows_message: the server's own message text.
        method: the full method name that failed.
    """

    def __init__(
        self, ows_message: str, *, code: Any = None, method: str | None = None
    ) -> None:
        self.code = code
        self.ows_message = redact(str(ows_message))
        self.method = method
        where = f" in {method}" if method else ""
        shown_code = f" (code {code})" if code is not None else ""
        super().__init__(f"OWS error{where}: {self.ows_message}{shown_code}")


class AccessDenied(OwsError, PermissionError):
    """The server refused the session or the API key."""


class NotFound(OwsError, LookupError):
    """The record asked for does not exist (or is no longer there)."""


class BadRequest(OwsError, ValueError):
    """The server refused the input (unknown field, value not allowed, ...)."""


class IncompleteRead(OtysError):
    """A paged read stopped before the end.

    Attributes:
        partial: a DataFrame with every row read so far (never presented as complete).
        resume_offset: the offset to resume from (pass it as ``offset=``).
        expected: the total count the server reported, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        partial: Any = None,
        resume_offset: int | None = None,
        expected: int | None = None,
    ) -> None:
        self.partial = partial
        self.resume_offset = resume_offset
        self.expected = expected
        super().__init__(message)


class DriftError(OtysError):
    """Records were added, changed or removed while a read was paging (strict mode)."""

    def __init__(self, message: str, *, frame: Any = None) -> None:
        self.frame = frame
        super().__init__(message)


class FileTransferError(OtysError, OSError):
    """An upload or download could not complete; nothing half-done is left behind."""
