"""The user-facing :class:`Session` and :func:`connect`.

A Session holds one OWS session token and everything tied to it: the content
language, the option-list cache, the field definitions and the rate budget.
The heavy lifting lives in one module per job; the methods here are the doors
to it, so that ``help(session.read_list)`` in a notebook shows what to pass.

Content language, two ways:

- ``with session.language("en"):`` runs every call inside it in that
  language, each wrapped in ``LanguageService.wrapRequest``. A
  ``MultiService.execute`` batch is never wrapped as a whole (real clients do
  not do that); each call inside it is wrapped instead. The active language is
  per thread (a context variable): a worker thread starts with none, so code
  that hands calls to threads passes ``language=session.language_code``.
- ``session.set_language("en")`` calls ``setLanguage`` on the server, which
  keeps it for the rest of the session. OWS sets it per service: given a
  ``service`` it sets that one, else the services in :data:`LANGUAGE_SERVICES`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from . import duplicates, files, paging, portal, writeback
from . import fields as field_lists
from . import options as option_lists
from .errors import (
    ConfigurationError,
    InvalidInput,
    OtysError,
    ProtocolError,
    register_secret,
)
from .schema import short_service
from .transport import (
    DEFAULT_URL,
    CallResult,
    Pacer,
    RetryPolicy,
    Transport,
    derive_endpoints,
    is_loopback,
)

if TYPE_CHECKING:
    import pandas as pd
    import requests

    from .journal import WriteReport

__all__ = ["LANGUAGE_SERVICES", "SUPPORTED_LANGUAGES", "Session", "connect"]

log = logging.getLogger(__name__)

_last_session: Session | None = None

#: The content languages OWS accepts (manual, section 2.6).
SUPPORTED_LANGUAGES = ("cs", "de", "en", "es", "fr", "nl", "us")

#: The services :meth:`Session.set_language` sets when no service is named:
#: the main record services, whose texts and option labels are multilingual.
LANGUAGE_SERVICES = (
    "CandidateService",
    "VacancyService",
    "RelationService",
    "RelationContactService",
    "ProcedureService",
)

# The options connect() understands; with sandbox=True the rest go to serve().
_SESSION_OPTIONS = frozenset(
    {
        "timeout",
        "retries",
        "backoff",
        "backoff_max",
        "max_wait",
        "seed",
        "rate_limit",
        "rate_window",
        "username",
        "password",
        "verify",
        "chunk",
        "sleep",
        "clock",
        "http",
        "sandbox_options",
    }
)

# Marks "use the language of the surrounding ``with session.language(...)``".
_ACTIVE: Any = object()


def connect(
    api_key: str | None = None,
    url: str | None = None,
    *,
    sandbox: bool = False,
    **options: Any,
) -> Session:
    """Open an OWS session (or a sandbox) and log in at once.

    Args:
        api_key: the OWS API key; defaults to the ``OTYS_API_KEY`` variable.
        url: the JSON-RPC endpoint; defaults to ``OTYS_URL``, then
            ``https://ows.otys.nl/jservice.php``. Plain ``http://`` is for a
            local server.
        sandbox: start a simulated OWS on 127.0.0.1 and connect to it; other
            options (``records``, ``seed``, ``latency``, ...) go to
            :func:`otyspd.sandbox.serve`.
        **options: ``timeout`` (seconds, default 30), ``retries`` (default 4),
            ``backoff``/``backoff_max``/``max_wait`` (seconds), ``rate_limit``
            (requests per minute, default 350), ``username``/``password`` for
            the field-list pages (default ``OTYS_USERNAME``/``OTYS_PASSWORD``),
            ``verify`` (TLS verification, on by default), ``chunk`` (calls per
            MultiService request, default 50); ``sleep``, ``clock`` and
            ``seed`` make waits testable. ``sandbox_options`` (a dict) goes to
            the sandbox as it is, for names the session uses too (its
            ``rate_limit``, say).

    Raises:
        ConfigurationError: no API key, a malformed url or an unknown option.
        AccessDenied: the server refused the key.

    >>> session = otyspd.connect(sandbox=True, records=200)
    >>> session.user["username"]
    """
    global _last_session

    own = {k: v for k, v in options.items() if k in _SESSION_OPTIONS}
    rest = {k: v for k, v in options.items() if k not in _SESSION_OPTIONS}
    sandbox_options = own.pop("sandbox_options", None) or {}
    if not isinstance(sandbox_options, Mapping):
        raise ConfigurationError(
            "sandbox_options must be a dict of sandbox settings, got "
            f"{type(sandbox_options).__name__}"
        )
    if not sandbox and sandbox_options:
        raise ConfigurationError(
            "sandbox_options only apply with connect(sandbox=True)"
        )
    server = None
    if sandbox:
        if api_key is not None or url is not None:
            raise ConfigurationError(
                "connect(sandbox=True) starts its own server and key; pass no api_key or url"
            )
        server = _start_sandbox({**rest, **sandbox_options})
        api_key, url = server.api_key, server.url
        own.setdefault("username", getattr(server, "username", None))
        own.setdefault("password", getattr(server, "password", None))
    elif rest:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(sorted(rest))} for connect(); "
            f"known are {', '.join(sorted(_SESSION_OPTIONS))} (and sandbox options with "
            "sandbox=True)"
        )

    try:
        session = _open(api_key, url, own, server)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    _last_session = session
    return session


def _start_sandbox(options: dict[str, Any]) -> Any:
    """Start an in-process sandbox on 127.0.0.1 with the given sandbox options."""
    import inspect

    from .sandbox import DEFAULT_KNOBS, serve

    known = {
        name
        for name, p in inspect.signature(serve).parameters.items()
        if p.kind is not p.VAR_KEYWORD
    } | set(DEFAULT_KNOBS)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for connect(sandbox=True); "
            f"session options are {', '.join(sorted(_SESSION_OPTIONS))}, sandbox options "
            f"are {', '.join(sorted(known))}"
        )
    try:
        server = serve(**{"port": 0, **options})
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"the sandbox cannot start as asked: {exc}") from exc
    log.info(
        "started a local OWS sandbox at %s: the data is simulated, not a real OTYS client",
        server.url,
    )
    return server


def _open(
    api_key: str | None, url: str | None, options: dict[str, Any], server: Any
) -> Session:
    """Build the transport from the options, log in and check the session."""
    transport = _build_transport(api_key, url, options)
    username = options.get("username") or os.environ.get("OTYS_USERNAME")
    password = options.get("password") or os.environ.get("OTYS_PASSWORD")
    session = Session(
        transport,
        sandbox=server,
        username=username,
        password=password,
        chunk=options.get("chunk", 50),
    )
    try:
        session.check()
    except BaseException:
        transport.http.close()
        raise
    return session


def _build_transport(
    api_key: str | None, url: str | None, options: dict[str, Any]
) -> Transport:
    """The transport for a key and url, after checking both and the options."""
    api_key = api_key if api_key is not None else os.environ.get("OTYS_API_KEY")
    if not api_key or not str(api_key).strip():
        raise ConfigurationError(
            "no OWS API key: pass connect(api_key=...) or set the OTYS_API_KEY environment "
            "variable (or use connect(sandbox=True) for simulated data)"
        )
    url = url or os.environ.get("OTYS_URL") or DEFAULT_URL
    endpoints = derive_endpoints(url)
    if endpoints.url.startswith("http://") and not is_loopback(endpoints.url):
        log.warning("%s is plain http: the API key travels unencrypted", endpoints.url)

    verify = options.get("verify", True)
    if verify is False:
        log.warning(
            "TLS certificate verification is off for %s, as asked", endpoints.url
        )
    elif not isinstance(verify, bool | str):
        raise ConfigurationError(
            f"verify must be True, False or a CA bundle path, got {verify!r}"
        )

    # Waits go through one sleep function, so that tests can skip them.
    pacer_kwargs = {k: options[k] for k in ("sleep", "clock") if k in options}
    return Transport(
        endpoints.url,
        api_key,
        http=options.get("http"),
        timeout=_timeout(options.get("timeout", 30.0)),
        retry=RetryPolicy(
            retries=options.get("retries", 4),
            backoff=options.get("backoff", 0.5),
            backoff_max=options.get("backoff_max", 30.0),
            max_wait=options.get("max_wait", 300.0),
            seed=options.get("seed"),
        ),
        pacer=Pacer(
            options.get("rate_limit", 350),
            options.get("rate_window", 60.0),
            **pacer_kwargs,
        ),
        verify=verify,
        sleep=options.get("sleep", time.sleep),
    )


def _timeout(value: Any) -> float | tuple[float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and v > 0 for v in value)
    ):
        return (float(value[0]), float(value[1]))
    raise ConfigurationError(
        f"timeout must be a number of seconds > 0 or a (connect, read) pair, got {value!r}"
    )


def _documented_by(function: Any) -> Any:
    """Give a Session method the full docstring of the module function it calls.

    The work lives in one module per job, documented there once; the method
    shows the same text in ``help(session.read_list)`` and Jupyter's ``?``.
    Its own one-line docstring is kept when the function has none.
    """

    def decorate(method: Any) -> Any:
        if function.__doc__:
            # The function's own ``session`` argument is the method's ``self``.
            lines = function.__doc__.splitlines()
            method.__doc__ = "\n".join(
                line for line in lines if not line.strip().startswith("session:")
            )
        return method

    return decorate


class Session:
    """An open OWS session. Make one with :func:`otyspd.connect`.

    Use it as a context manager to log out (and stop its sandbox) at the end::

        with otyspd.connect(sandbox=True) as session:
            session.check()

    Attributes:
        user: what ``check`` said about the key's user and client (a dict).
        sandbox: the sandbox server this session started, or None.
        username, password: credentials for the field-list pages, or None.
        http: the ``requests.Session`` every request goes through.
        max_upload_size: the largest file :meth:`upload` sends, in bytes
            (None: 8 MB, the limit OTYS's own clients keep to).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        sandbox: Any = None,
        username: str | None = None,
        password: str | None = None,
        chunk: int = 50,
    ) -> None:
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
            raise ConfigurationError(
                f"chunk must be a whole number >= 1, got {chunk!r}"
            )
        self._transport = transport
        self.sandbox = sandbox
        self.username = username
        self.password = password
        register_secret(password)
        self.user: dict | None = None
        self.max_upload_size: int | None = None
        self._cache: dict[Any, Any] = {}
        self._chunk = chunk
        self._language: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            f"otyspd_language_{id(self)}", default=None
        )
        self._session_language: str | None = None
        self._closed = False

    # ---- where and who -------------------------------------------------------

    @property
    def url(self) -> str:
        """The JSON-RPC endpoint."""
        return self._transport.url

    @property
    def base_url(self) -> str:
        """The folder of the endpoints, ending in ``/``."""
        return self._transport.endpoints.base_url

    @property
    def file_service_url(self) -> str:
        """The upload endpoint (``fileService.php`` beside the JSON-RPC endpoint)."""
        return self._transport.endpoints.file_service_url

    @property
    def download_url(self) -> str:
        """The download endpoint (``fileServiceDownload`` beside the JSON-RPC endpoint)."""
        return self._transport.endpoints.download_url

    @property
    def http(self) -> requests.Session:
        """The ``requests.Session`` (connection pool, headers) all requests share."""
        return self._transport.http

    @property
    def simulated(self) -> bool:
        """True when the session talks to a sandbox this session started."""
        return self.sandbox is not None

    @property
    def closed(self) -> bool:
        """True after :meth:`close` (or leaving the ``with`` block)."""
        return self._closed

    @property
    def default_language(self) -> str | None:
        """The user's default content language, from ``check``."""
        return (self.user or {}).get("defaultContentLanguage")

    @property
    def language_code(self) -> str | None:
        """The content language calls run in now, or None for the server's default.

        Inside ``with session.language(code)`` that code (for this thread);
        else the one :meth:`set_language` set for the main services.
        """
        return self._language.get() or self._session_language

    # ---- calls -----------------------------------------------------------------

    def check(self) -> dict:
        """Ask the server who this session is; the answer is kept as ``session.user``.

        >>> session.check()["username"]
        """
        result = self.call("check")
        if not isinstance(result, dict):
            raise ProtocolError(
                f"check answered {type(result).__name__}, not an object", method="check"
            )
        self.user = result
        return result

    def call(
        self,
        method: str,
        *params: Any,
        idempotent: bool | None = None,
        language: str | None = _ACTIVE,
    ) -> Any:
        """Call one OWS method; the session token is put in front of ``params``.

        Args:
            method: ``"CandidateService.getDetail"`` or the full
                ``"Otys.Services.CandidateService.getDetail"``.
            *params: the parameters after the token.
            idempotent: True lets a write be retried after a failure; default:
                only reads are retried.
            language: a content language for this call; default: the one of
                the surrounding ``with session.language(...)``; None: none.

        >>> session.call("CandidateService.getDetail", "123", {"uid": 1})
        """
        self._ensure_open()
        language = self._language_for(language)
        return self._transport.call(
            method, params, language=language, idempotent=idempotent
        )

    def multi(
        self,
        calls: list | tuple | Mapping[str, Any],
        *,
        idempotent: bool | None = None,
        chunk: int | None = None,
        language: str | None = _ACTIVE,
    ) -> list[CallResult] | dict[str, CallResult]:
        """Run many calls through ``MultiService.execute``; one result per call.

        Args:
            calls: a list of ``(method, params)`` pairs, or a dict of
                name -> ``(method, params)``; ``params`` leave out the token.
            idempotent: True lets a batch with writes be retried after a failure.
            chunk: calls per request (default 50); longer lists take several.
            language: as for :meth:`call`; each call inside is wrapped.

        Returns:
            The same container shape, holding a :class:`CallResult` per call
            (``.ok``, ``.data``, ``.error``, ``.unwrap()``). One failing call
            does not stop the others.

        >>> a, b = session.multi([("CandidateService.getDetail", ["1", {"uid": 1}]),
        ...                       ("CandidateService.getDetail", ["2", {"uid": 1}])])
        """
        self._ensure_open()
        return self._transport.multi(
            calls,
            language=self._language_for(language),
            idempotent=idempotent,
            chunk=self._chunk if chunk is None else chunk,
        )

    # ---- content language ------------------------------------------------------

    @contextlib.contextmanager
    def language(self, code: str | None) -> Iterator[Session]:
        """Run the calls inside the ``with`` block in content language ``code``.

        >>> with session.language("en"):
        ...     df = session.read_list("Vacancy", ["uid", "title"])
        """
        code = self._checked_language(code) if code is not None else None
        token = self._language.set(code)
        try:
            yield self
        finally:
            self._language.reset(token)

    def set_language(self, code: str, service: str | None = None) -> None:
        """Set the content language on the server for the rest of the session.

        OWS keeps it per service: with ``service`` only that service changes,
        else every service in :data:`LANGUAGE_SERVICES` (in one batch).
        """
        code = self._checked_language(code)
        if service is not None:
            self.call(f"{short_service(service)}.setLanguage", code, language=None)
            return
        calls = [(f"{name}.setLanguage", [code]) for name in LANGUAGE_SERVICES]
        for result in self.multi(calls, language=None):
            result.unwrap()
        self._session_language = code

    def _language_for(self, language: Any) -> str | None:
        if language is _ACTIVE:
            return self._language.get()
        return self._checked_language(language) if language is not None else None

    def _checked_language(self, code: Any) -> str:
        """A supported language code in lower case, or InvalidInput saying which are."""
        client = _client_languages(self.user)
        known = f"; this client has {', '.join(client)}" if client else ""
        if not isinstance(code, str) or code.strip().lower() not in SUPPORTED_LANGUAGES:
            raise InvalidInput(
                f"{code!r} is not a content language OWS supports; use one of "
                f"{', '.join(SUPPORTED_LANGUAGES)}{known}"
            )
        code = code.strip().lower()
        if client and code not in client:
            log.warning(
                "content language %r is not one of this client's (%s); the server may "
                "answer in its default language",
                code,
                ", ".join(client),
            )
        return code

    # ---- ending ------------------------------------------------------------------

    def logout(self) -> None:
        """End the server session. Safe to call twice; never raises for a dead session.

        A later call logs in again; :meth:`close` ends the Session for good.
        """
        self._transport.logout()

    def close(self) -> None:
        """Log out, stop the sandbox this session started, and close connections."""
        global _last_session
        if self._closed:
            return
        self._closed = True
        try:
            self._transport.close()
        finally:
            if self.sandbox is not None:
                self.sandbox.stop()
            if _last_session is self:
                _last_session = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _ensure_open(self) -> None:
        if self._closed:
            raise OtysError(
                "this session is closed; open a new one with otyspd.connect()"
            )

    def __repr__(self) -> str:
        user = self.user or {}
        who = ""
        if user.get("username") is not None:
            who += f" user={user['username']!r}"
        if user.get("client") is not None:
            who += f" client={user['client']!r}"
        if self.sandbox is not None:
            # The port changes on every run; leaving it out keeps notebook output stable.
            where = "sandbox (simulated data) http://127.0.0.1:<port>/jservice.php"
        else:
            where = self.url
        state = " closed" if self._closed else ""
        return f"<otyspd.Session {where}{who}{state}>"

    # ---- reading -----------------------------------------------------------

    @_documented_by(paging.read_list)
    def read_list(
        self,
        service: str,
        what: Any,
        condition: Any = None,
        *,
        sort: Any = None,
        limit: int | None = None,
        labels: bool = True,
        progress: bool | None = None,
        **options: Any,
    ) -> pd.DataFrame:
        """Read a whole list into a DataFrame indexed by ``uid``.

        >>> df = session.read_list("Candidate", ["uid", "Person.lastName"])
        """

        return paging.read_list(
            self,
            service,
            what,
            condition,
            sort=sort,
            limit=limit,
            labels=labels,
            progress=progress,
            **options,
        )

    @_documented_by(paging.iter_pages)
    def iter_pages(
        self,
        service: str,
        what: Any,
        condition: Any = None,
        *,
        sort: Any = None,
        limit: int | None = None,
        labels: bool = True,
        progress: bool | None = None,
        **options: Any,
    ) -> Iterator[pd.DataFrame]:
        """Yield the list one DataFrame per page (memory stays bounded)."""
        return paging.iter_pages(
            self,
            service,
            what,
            condition,
            sort=sort,
            limit=limit,
            labels=labels,
            progress=progress,
            **options,
        )

    @_documented_by(paging.read_detail)
    def read_detail(
        self, service: str, uid: str, what: Any, *, labels: bool = True
    ) -> pd.Series:
        """Read one record as a Series named by its uid."""
        return paging.read_detail(self, service, uid, what, labels=labels)

    @_documented_by(paging.export)
    def export(
        self,
        service: str,
        what: Any,
        condition: Any = None,
        *,
        path: str,
        **options: Any,
    ) -> dict:
        """Stream a list to a .parquet, .csv or .jsonl file, page by page."""
        return paging.export(self, service, what, condition, path=path, **options)

    @_documented_by(option_lists.get_options)
    def options(self, service: str, fields: Any) -> dict[str, dict]:
        """Return the option lists (id -> label) of ``fields``, cached per language."""
        return option_lists.get_options(self, service, fields)

    def field_defs(self, service: str) -> dict[str, Any] | None:
        """The field definitions of ``service`` by dotted name, or None when unknown."""
        return field_lists.field_defs(self, service)

    @_documented_by(field_lists.fields_frame)
    def fields(self, service: str) -> pd.DataFrame:
        """Return the field definitions of ``service`` as a DataFrame."""
        return field_lists.fields_frame(self, service)

    # ---- writing -----------------------------------------------------------

    @_documented_by(writeback.diff)
    def diff(
        self, service: str, original: pd.DataFrame, edited: pd.DataFrame
    ) -> pd.DataFrame:
        """One row per changed cell: ``uid``, ``field``, ``old``, ``new``."""
        return writeback.diff(self, service, original, edited)

    @_documented_by(writeback.write_back)
    def write_back(
        self,
        service: str,
        original: pd.DataFrame,
        edited: pd.DataFrame,
        *,
        dry_run: bool = False,
        **options: Any,
    ) -> WriteReport:
        """Send the changed cells of ``edited`` to the server; return a WriteReport."""
        return writeback.write_back(
            self, service, original, edited, dry_run=dry_run, **options
        )

    # ---- files, duplicates, portal ----------------------------------------

    @_documented_by(files.upload)
    def upload(
        self, path_or_file: Any, name: str | None = None, *, max_size: int | None = None
    ) -> dict:
        """Upload a file to the file service; return its ouid, name, mimeType and size."""
        return files.upload(self, path_or_file, name=name, max_size=max_size)

    @_documented_by(files.attach)
    def attach(
        self,
        entity: str,
        uid: str,
        file: Any,
        type_id: Any,
        subject: str,
        **extra: Any,
    ) -> str:
        """Bind an uploaded file to a record's dossier; return the dossier item id."""
        return files.attach(self, entity, uid, file, type_id, subject, **extra)

    @_documented_by(files.document_types)
    def document_types(self) -> pd.DataFrame:
        """All document types of the client as a DataFrame."""
        return files.document_types(self)

    @_documented_by(files.documents)
    def documents(self, entity: str, uid: str) -> pd.DataFrame:
        """The documents attached to a record's dossier."""
        return files.documents(self, entity, uid)

    @_documented_by(files.download)
    def download(self, ouid: str, dest: Any, *, overwrite: bool = False) -> Any:
        """Download a file to ``dest`` (a folder or a file path); return the path."""
        return files.download(self, ouid, dest, overwrite=overwrite)

    @_documented_by(duplicates.duplicate_info)
    def duplicate_info(self, identifier: Any) -> duplicates.DuplicateInfo:
        """The merge history of a candidate (uid, internalId or personalNr)."""
        return duplicates.duplicate_info(self, identifier)

    @_documented_by(portal.portal_link)
    def portal_link(
        self, webuser_uid: str, url: str, days: int = 7, domain: str | None = None
    ) -> str:
        """A hashed link that logs a web user in to an OTYS portal page."""
        return portal.portal_link(self, webuser_uid, url, days=days, domain=domain)


def _client_languages(user: dict | None) -> list[str]:
    """The content language codes ``check`` listed (a list, or an object of codes)."""
    raw = (user or {}).get("contentLanguages")
    if isinstance(raw, Mapping):
        raw = [*raw.keys(), *raw.values()]
    if not isinstance(raw, list | tuple):
        return []
    codes = {str(c).strip().lower() for c in raw if isinstance(c, str)}
    return sorted(c for c in codes if c in SUPPORTED_LANGUAGES)
