"""A local simulator of the OTYS web services (OWS), over real HTTP on 127.0.0.1.

>>> from otyspd.sandbox import serve
>>> with serve(records=500) as srv:              # doctest: +SKIP
...     print(srv.url)                             # http://127.0.0.1:<port>/jservice.php

Everything here is simulated: made-up people and companies (example.* domains)
in a made-up Dutch recruitment tenant, seeded deterministically from ``seed``
and ``records``.

What it emulates
----------------
- ``POST /jservice.php`` (query strings ignored): JSON-RPC. Errors come back in
  HTTP 200 as ``{"error": {"message", "code"}, "id"}`` echoing the request id;
  results as ``{"result", "id"}`` (no ``jsonrpc`` member, as in the manual).
  Full names ``Otys.Services.X.y`` and short ``X.y`` are both accepted; only
  ``loginByUid``, ``login``, ``check`` and ``logout`` are unprefixed.
- Malformed requests always get an answer, never a cut connection:
  a body that is not JSON, not UTF-8, uses NaN/Infinity or nests deeper than
  512 levels (PHP's ``json_decode`` limit) gets -32700 with id null; an empty
  or non-string ``method`` -32600; a number that does not fit in 64 bits
  (an offset, limit, id or field value) -32602 "value out of range"; a
  sandbox bug -32603 "Internal sandbox error" (also inside MultiService,
  where it fails that one call). A POST whose ``Content-Length`` is missing,
  not a plain number of bytes, or given twice with different values, and a
  chunked body, get HTTP 400 with that JSON error (code -32700, id null) and
  the connection is closed; a body over 32 MiB gets HTTP 413 likewise.
- Sessions: ``loginByUid(key)`` returns a 26-character token, or ``false`` for
  a wrong key (what the PHP clients test for; the real server may differ).
  ``check`` returns clientId, client, id, username, email, contentLanguages,
  defaultContentLanguage. ``logout`` returns true; a second one gets
  ``"Access denied; please login first"``. An unknown or absent token gets that
  same text; an expired one ``"Access denied; please login again"``.
- Services CandidateService, VacancyService, RelationService,
  RelationContactService, UserService, DocumentTypeService and ProcedureService
  with ``getListEx`` (``{listOutput, totalCount, searchExtras: []}``),
  ``getList`` (a bare array), ``getDetail``, ``add`` (the new uid), ``update``
  (partial, nested), ``delete``, ``getOptionLists`` and ``setLanguage``. Their
  fields are declared in :mod:`otyspd.sandbox.schema` and enforced.
- ``LanguageService.wrapRequest(lang, request)``, ``MultiService.execute(calls)``
  (array or keyed object, mirrored; one failure does not fail the batch),
  ``CandidateService.retrieveDuplicateInfo``, ``OCDService.createToken``,
  ``AttachedDocumentsService.add``, ``DossierService.getList`` / ``getCount``.
- ``POST /fileService.php`` (multipart: ``sessionId`` and ``file``) answers
  ``{"<field name>": {ouid, name, mimeType, size}}``, one entry per file part
  (several under different field names are fine);
  ``GET /fileServiceDownload?ouid=..&class=AttachedDocument`` with the token in
  the ``PHPSESSID`` cookie (or the legacy ``sessionId`` parameter).
- ``GET /info/`` and ``/info/detail.php?service=Otys.Services.X`` behind HTTP
  basic auth (``username`` / ``password``): one HTML table row per field, with
  the manual's columns; booleans as yes/no. Multilingual fields say so in
  their Comment ("Multilingual: ...").

Quirks reproduced
-----------------
- uids are strings (16 hex digits, some with leading zeros), except UserService,
  whose uids (and every ``userId``) are integers; ``internalId`` is an integer.
- Datetimes are ``YYYY-MM-DD HH:MM:SS`` in Europe/Amsterdam time, dates
  ``YYYY-MM-DD``. Empty ``CandidateService.availableAt`` comes as ``0000-00-00``
  and empty ``acceptTermsTs`` as ``0000-00-00 00:00:00`` (MySQL zero dates);
  other empty dates are null.
- Booleans are JSON booleans, except ``CandidateService.ownsCar`` and
  ``UserService.blocked`` (strings ``"1"``/``"0"``) and
  ``CandidateService.willRelocate`` (integers 1/0), as PHP sends them.
- Empty collections and maps come back as ``[]`` (PHP's json_encode), and so do
  the containers in the results of ``update`` (``{"Person": []}``, as in the
  manual) and ``delete``.
- Option lists are id -> label maps (ids as JSON object keys).
  ``getOptionLists(["Person.languageCode"])`` answers under ``cmsLanguages``,
  ``VacancyService.getOptionLists(["publishedWebsites"])`` under
  ``publishedWebsites``. Option collections (``matchCriteria_N``,
  ``publishedWebsites``) read as ``{id: label}`` maps and are written as such a
  map or as a list of ids.
- Content languages: ``setLanguage`` per session (on any of the services
  above, session-wide; on another service it is an unknown method),
  ``wrapRequest`` per call; the manual's codes cs de en es fr nl us are
  accepted, anything else is an error; the default is nl. The tenant has
  content in nl en de fr only (``check.contentLanguages``): the manual lists
  the other codes as supported by OWS, so they are accepted, and their
  multilingual fields read as null. Vacancy titles and text fields have one
  value per language, with no fallback (a missing translation reads as null).
  Option labels follow the language and fall back to English, then Dutch.
- Params sent as a JSON object (a PHP habit): numbered keys (ASCII digits
  only) give the positional params in order, the other keys together form one
  object after them (``{"0": token, "what": {...}}`` is
  ``[token, {"what": {...}}]``).

Lists
-----
Conditions: null, a bare COND, or nested AND/OR groups; operators EQ NE GE GT
LE LT T F LIKE NLIKE. LIKE takes ``%`` and ``_`` and a backslash escape, and is
case-insensitive; string EQ is too (as MySQL's default collation). ``GT ''``
and ``NE ''`` mean "not empty", ``EQ ''`` "empty"; ``EQ``/``NE`` with a list
mean "any of"/"none of"; ``EQ null`` is "is null". ``T`` matches true flags
only; ``F`` matches false and empty ones (a flag never set reads as "no" in
the OTYS screens; the real server's choice is not documented). Datetime params
are ISO UTC (``2025-07-31T22:00:00.000Z``) or ``YYYY-MM-DD HH:MM:SS`` Amsterdam
time; a date field given an ISO instant takes its Amsterdam date. Option collections filter
with EQ/NE on option ids (contains any of / none of).

``sort`` (or its alias ``order``) maps fields to ASC/DESC, several allowed;
ties, and lists without sort, go by internal id ascending (creation order).
``limit`` above 200 is silently served as 200; with a truthy
``excludeLimitCheck`` the cap is 1000. No ``limit`` means the cap; ``limit: 0``
an empty page. ``getTotalCount`` truthy gives an integer ``totalCount``;
otherwise ``totalCount`` is null. Both flags are read as PHP's boolean cast
reads them: null, false, 0, "", "0" and [] are false; anything else is true,
"false" included. Unknown top-level keys are ignored.
``what`` null or empty gives the fields marked "in list by default" (getList)
or every field (getDetail); a map with some 1s gives those; a map with only 0s
gives the defaults minus those. A whole container (``"Person": 1``) gives its
listable fields. Dotted keys (``{"Person.firstName": 1}``) are accepted too.

Writes: unknown, non-updatable (update) and non-insertable (add) fields, a
missing obligatory field, an empty "not empty" field, a value of the wrong
type, and an unknown option id are refused, naming the field; nothing is
written. ``add`` without ``userId`` makes user 1 (the API user) the owner.
Every write sets ``lastModified``. ``Person.PhoneNumbers`` and
``EmploymentHistory`` take a list (replaces all) or a map of edits: numbered
items (1-based) replace, ``ADD`` appends a list, ``DELETE`` removes numbered
items. A ProcedureStatus1 uid may be given as ``"1_<id>"``.

Choices where real behaviour is unknown (all error texts the manual does not
give end in "(simulated message)")
------------------------------------------------------------------------------
- Error codes: 0 for access errors (as the manual shows), 404 for a record not
  found ("Record not found: ..."), -32602 for refused input, -32601 for an
  unknown method ("Method Otys.Services.X.y does not exist ..."), -32700 for a
  body that is not JSON, -32600 for a request without method, -32603 for a
  sandbox bug.
- ``retrieveDuplicateInfo`` looks up merged candidates by uid or internalId
  first, then by personalNr (a number that matches both finds the
  internalId); an existing candidate answers with the merges
  that ended in it; an identifier known nowhere is "Record not found". Merged
  candidates are not in CandidateService any more; their ids live on in
  ``mergeHistory``. Chains (A -> B -> C) are seeded.
- ``OCDService.createToken`` wants a non-empty webuser uid string,
  ``{"url": "http(s)://..."}`` and 1 to 365 days (integer or digit string).
- ``AttachedDocumentsService.add``: exactly one entity key; candidate,
  relation, relation contact and vacancy uids must exist (the sandbox has no
  tasks, sales trajectories or projects and accepts any uid for those); the
  file must be uploaded and the type must exist. Returns the dossier id string.
- ``DossierService.getList`` returns a bare array of items with ``id_rec`` (the
  file ouid), ``subject``, ``typeId``, ``fileName``, ``mimeType``, ...;
  ``getCount`` an integer. Only ``restrictClass: ["AttachedDocs"]`` exists.
- Uploads: refused (HTTP 200, ``{"error": {...}}``) when empty, over
  ``max_upload_bytes`` (8 MB) or not one of pdf doc docx rtf txt jpg jpeg png
  gif (judged by the file name's extension). All or nothing: if any file part
  is refused, none is stored. Two file parts with the same field name are
  refused (PHP would keep only the last). A body that is not
  multipart/form-data, or whose boundary does not match, is refused as such
  before the session is looked at; a ``sessionId`` sent twice counts with its
  last value, as in PHP. Downloads without a valid
  session get HTTP 403 with a JSON error, an unknown ouid HTTP 404.
- The rate limit counts HTTP requests (a MultiService batch is one) per API
  key in a sliding window; a refused request (HTTP 429 with ``Retry-After``)
  does not count. The ``X-Orl-*`` headers are sent while the limit is on.
- ``latency`` is network time, outside any lock; ``work`` is server time
  spent under the session's lock, so with ``serialize_sessions`` (PHP's
  session lock) one session's requests are worked on one at a time.
- Session lifetime counts from the last use (inactivity). With
  ``expire_after_calls=N`` the N+1st authenticated call fails; every call in a
  MultiService batch counts.
- Faults (``fault_rate``, ``drop_rate``, ``malformed_rate``) are drawn from a
  stream seeded with ``fault_seed``, one draw per request that reaches the
  method stage (after the rate limit), in arrival order; ``fault_methods``
  restricts them to some methods (short names). For a write the fault happens
  before it is applied, unless ``fault_after_write=True``: then the write is
  applied and its answer lost. Malformed bodies are half a JSON answer, an
  empty body or a PHP fatal-error page.
- ``churn={"add": a, "change": c, "delete": d}``: after every list page the
  service gets ``a`` copies of random records under new uids, ``c`` records
  with a new status and lastModified, ``d`` records deleted, drawn from a
  stream seeded with ``seed`` (reseeded by ``fault_seed`` when that is set).

What it does not do (these fail loudly)
---------------------------------------
XML-RPC, chunked request bodies (HTTP 400, see above), ``getOptionListsEx``,
``loginAs``, webhooks, e-mail, any other service or method (an error naming
it), conditions on collections other than option collections, and the real
server's full field lists (only the fields in :mod:`otyspd.sandbox.schema`).
The ACTONOMY ``search`` key of a list request is not emulated either; like any
unknown key it is ignored.
"""

from __future__ import annotations

from typing import Any

from .server import DEFAULT_KNOBS, Sandbox

__all__ = ["DEFAULT_KNOBS", "Sandbox", "serve"]


def serve(
    port: int = 0,
    api_key: str | None = None,
    records: int = 2000,
    seed: int = 1,
    latency: float = 0.0,
    rate_limit: int | None = 350,
    db: str | None = None,
    username: str = "sandbox",
    password: str | None = None,
    host: str = "127.0.0.1",
    **knobs: Any,
) -> Sandbox:
    """Start a sandbox in background threads and return it (already serving).

    Args:
        port: TCP port; 0 picks a free one (read ``.url``).
        api_key: the key ``loginByUid`` accepts; random when None (read ``.api_key``).
        records: number of candidates to seed (other services scale with it).
        seed: seed of the generated data; the same seed gives the same data.
        latency: seconds added to every request, as network time: requests of
            one session wait it out side by side.
        rate_limit: requests per 60 s per API key; None switches the limit off.
        db: SQLite file to keep the data in (reused as it is if already seeded);
            None keeps it in memory.
        username, password: for the field definition pages (password random if None).
        host: interface to listen on; only loopback unless you ask.
        **knobs: any of ``DEFAULT_KNOBS`` (work: seconds of server time per
            request, spent under the session's lock; session_lifetime, expire_after_calls,
            serialize_sessions, fault_seed, fault_rate, drop_rate, malformed_rate,
            fault_after_write, fault_methods, churn, rate_window, max_upload_bytes).

    >>> srv = serve(records=200)                  # doctest: +SKIP
    >>> srv.configure(fault_rate=0.1, fault_seed=7)  # doctest: +SKIP
    >>> srv.stop()                                # doctest: +SKIP
    """
    return Sandbox(
        port=port,
        host=host,
        api_key=api_key,
        records=records,
        seed=seed,
        db=db,
        username=username,
        password=password,
        latency=latency,
        rate_limit=rate_limit,
        **knobs,
    )
