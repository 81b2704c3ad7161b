"""Files: upload, bind to a dossier, list a dossier, download (manual chapter 3).

The file service lives beside the JSON-RPC endpoint: ``fileService.php`` takes a
multipart upload and answers with the new file's ouid; ``AttachedDocumentsService.add``
binds that ouid to the dossier of a record; ``DossierService.getList`` lists a
dossier; ``fileServiceDownload`` hands the bytes back.

Two promises hold for every call here:

- Nothing half-done is left behind. An upload is checked (exists, is a file, not
  empty, under the size limit) before a byte is sent. A download is written to a
  hidden temporary file in the destination folder, flushed to disk, and only then
  renamed into place; on any failure the temporary file is removed.
- The session token travels only where the manual says: in the multipart
  ``sessionId`` part of an upload and in the ``PHPSESSID`` cookie of a download,
  never in a URL, a log line or an error message.
"""

from __future__ import annotations

import contextlib
import io
import logging
import mimetypes
import numbers
import os
import re
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import requests

from . import frames
from .errors import (
    AccessDenied,
    FileTransferError,
    InvalidInput,
    NotFound,
    OtysError,
    ProtocolError,
    abbreviate,
)

if TYPE_CHECKING:
    from .session import Session

__all__ = [
    "ENTITIES",
    "MAX_UPLOAD_SIZE",
    "Entity",
    "attach",
    "document_types",
    "documents",
    "download",
    "resolve_entity",
    "safe_filename",
    "upload",
]

log = logging.getLogger(__name__)

#: Largest file :func:`upload` sends unless told otherwise (8 MB, as OTYS's own
#: plugin enforces). Pass ``max_size=`` or set ``session.max_upload_size`` to change it.
MAX_UPLOAD_SIZE = 8 * 1024 * 1024

_PAGE = 100
_CHUNK = 64 * 1024
_ERROR_TYPES = ("text/html", "application/json", "text/json", "application/xhtml")


@dataclass(frozen=True)
class Entity:
    """A kind of record that has a dossier.

    Attributes:
        name: the plain word (``"candidate"``).
        key: the key ``AttachedDocumentsService.add`` expects (``"candidateUid"``).
        entity_id: the ``objectEntityId`` of ``DossierService`` (2 for candidates).
        type_flag: the DocumentTypeService flag saying a type may be used for it.
    """

    name: str
    key: str
    entity_id: int
    type_flag: str


#: The entities of the manual's chapter 3, by plain name.
ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Entity("candidate", "candidateUid", 2, "forCandidates"),
        Entity("customer", "relationUid", 3, "forCustomers"),
        Entity("customer contact", "relationContactUid", 4, "forCustomerContacts"),
        Entity("vacancy", "vacancyUid", 1, "forVacancies"),
        Entity("task", "taskUid", 28, "forTasks"),
        Entity("sales trajectory", "salesTrajectoryUid", 48, "forSales"),
        Entity("project", "projectUid", 158, "forProjects"),
    )
}

_ALIASES = {
    "candidates": "candidate",
    "customers": "customer",
    "relation": "customer",
    "relations": "customer",
    "customer contacts": "customer contact",
    "contact": "customer contact",
    "contacts": "customer contact",
    "relation contact": "customer contact",
    "relation contacts": "customer contact",
    "relationcontact": "customer contact",
    "customercontact": "customer contact",
    "vacancies": "vacancy",
    "job": "vacancy",
    "jobs": "vacancy",
    "tasks": "task",
    "sales trajectories": "sales trajectory",
    "salestrajectory": "sales trajectory",
    "sales": "sales trajectory",
    "projects": "project",
}
_ALIASES.update({e.key.lower(): e.name for e in ENTITIES.values()})

_FLAGS = ("forDocuments", *(e.type_flag for e in ENTITIES.values()))


def resolve_entity(entity: Any) -> Entity:
    """Map a plain word (``"Candidate"``, ``"relation"``, ``"sales trajectories"``) to an Entity.

    >>> resolve_entity("Customer contacts").key
    'relationContactUid'
    """
    if isinstance(entity, Entity):
        return entity
    if not isinstance(entity, str) or not entity.strip():
        raise InvalidInput(f"entity must be a word such as 'candidate', got {entity!r}")
    word = re.sub(r"[\s_-]+", " ", entity.strip().lower())
    word = _ALIASES.get(word, word)
    if word not in ENTITIES:
        raise InvalidInput(
            f"unknown entity {entity!r}; use one of: " + ", ".join(sorted(ENTITIES))
        )
    return ENTITIES[word]


# ---- upload ------------------------------------------------------------------


def upload(
    session: Session,
    path_or_file: Any,
    name: str | None = None,
    *,
    max_size: int | None = None,
) -> dict:
    """Upload a file to the file service and return its metadata.

    Args:
        session: an open Session.
        path_or_file: a path, a binary file object, or ``bytes`` (then ``name`` is needed).
        name: the file name the server stores; defaults to the path's or object's name.
        max_size: largest size in bytes; defaults to ``session.max_upload_size`` or 8 MB.

    Returns:
        ``{"ouid", "name", "mimeType", "size"}`` as the server answered.

    Raises:
        InvalidInput: missing, empty, oversized or unnamed file (nothing was sent).
        FileTransferError: the server refused the file or the connection failed.
        ProtocolError: the server's answer is not the documented shape.

    >>> info = session.upload("cv.pdf")
    >>> info["ouid"]
    """
    limit = _size_limit(session, max_size)
    data, filename = _read_upload(path_or_file, name, limit)
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"

    # The token goes in the multipart body only; a refused session is retried once.
    body = _post_upload(session, filename, data, content_type)
    if _is_access_denied(body):
        _relogin(session)
        body = _post_upload(session, filename, data, content_type)
        if _is_access_denied(body):
            raise AccessDenied(
                f"the file service refused the session for {filename!r} after a fresh login"
            )
    return _parse_upload_answer(body, filename)


def _size_limit(session: Session, max_size: int | None) -> int:
    limit = (
        max_size if max_size is not None else getattr(session, "max_upload_size", None)
    )
    if limit is None:
        return MAX_UPLOAD_SIZE
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise InvalidInput(
            f"max_size must be a positive number of bytes, got {limit!r}"
        )
    return limit


def _read_upload(path_or_file: Any, name: str | None, limit: int) -> tuple[bytes, str]:
    """Read the bytes to send, checking everything that can be checked locally."""
    if name is not None and (not isinstance(name, str) or not _clean_name(name)):
        raise InvalidInput(f"name must be a non-empty file name, got {name!r}")

    if isinstance(path_or_file, (bytes, bytearray, memoryview)):
        if name is None:
            raise InvalidInput("uploading bytes needs a file name: pass name='cv.pdf'")
        data = bytes(path_or_file)
        where = "the bytes given"
    elif isinstance(path_or_file, (str, os.PathLike)):
        path = Path(path_or_file).expanduser()
        if not path.exists():
            raise InvalidInput(f"no file at {str(path)!r}")
        if not path.is_file():
            raise InvalidInput(f"{str(path)!r} is not a regular file (a folder?)")
        size = path.stat().st_size
        if size > limit:
            raise InvalidInput(_too_big(str(path), size, limit))
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
        name = name or path.name
        where = repr(str(path))
    elif hasattr(path_or_file, "read"):
        data = path_or_file.read(limit + 1)
        if isinstance(data, str):
            raise InvalidInput(
                "the file object is open in text mode; open it with 'rb'"
            )
        if name is None:
            raw = getattr(path_or_file, "name", None)
            name = os.path.basename(raw) if isinstance(raw, str) else None
        if not name:
            raise InvalidInput("the file object has no name: pass name='cv.pdf'")
        where = repr(name)
    else:
        raise InvalidInput(
            f"upload takes a path, a binary file object or bytes, got {type(path_or_file).__name__}"
        )

    if not data:
        raise InvalidInput(f"{where} is empty; the file service refuses empty files")
    if len(data) > limit:
        raise InvalidInput(_too_big(where, len(data), limit))
    return data, _clean_name(name) or "upload"


def _too_big(where: str, size: int, limit: int) -> str:
    return (
        f"{where} is {size:,} bytes, over the upload limit of {limit:,} bytes; "
        "pass max_size= to raise it if the server allows larger files"
    )


def _post_upload(
    session: Session, filename: str, data: bytes, content_type: str
) -> Any:
    """Send one multipart upload; return the decoded JSON answer."""
    token = _token(session)
    started = time.monotonic()
    try:
        response = session.http.post(
            session.file_service_url,
            data={"sessionId": token},
            files={"file": (filename, io.BytesIO(data), content_type)},
            timeout=_timeout(session),
            verify=_verify(session),
        )
    except requests.RequestException as exc:
        raise FileTransferError(
            f"uploading {filename!r} failed: {type(exc).__name__}; nothing was stored"
        ) from exc
    log.debug(
        "upload %s (%d bytes): HTTP %s in %.2fs",
        filename,
        len(data),
        response.status_code,
        time.monotonic() - started,
    )

    if response.status_code in (401, 403):
        return {"error": {"message": "Access denied; please login again"}}
    if response.status_code != 200:
        raise FileTransferError(
            f"the file service refused {filename!r} with HTTP {response.status_code}: "
            f"{abbreviate(response.text)}"
        )
    try:
        return response.json()
    except ValueError as exc:
        raise ProtocolError(
            f"the file service answered {filename!r} with something that is not JSON",
            body=response.text,
        ) from exc


def _parse_upload_answer(body: Any, filename: str) -> dict:
    """Take the one ``{"<field>": {ouid, name, mimeType, size}}`` entry of the answer."""
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise FileTransferError(
            f"the file service refused {filename!r}: {abbreviate(message)}"
        )
    if not isinstance(body, dict) or len(body) != 1:
        raise ProtocolError(
            "the file service's answer is not one {field: {ouid, name, mimeType, size}} entry",
            body=body,
        )
    (entry,) = body.values()
    if not isinstance(entry, dict) or not entry.get("ouid"):
        raise ProtocolError("the file service's answer carries no file ouid", body=body)
    size = entry.get("size")
    with contextlib.suppress(TypeError, ValueError):
        size = int(size)
    return {
        "ouid": str(entry["ouid"]),
        "name": entry.get("name", filename),
        "mimeType": entry.get("mimeType"),
        "size": size,
    }


# ---- document types and binding ------------------------------------------------


def document_types(session: Session) -> pd.DataFrame:
    """All document types of the client, indexed by ``uid``.

    Columns: ``name`` and the manual's boolean flags ``forDocuments``,
    ``forCandidates``, ``forCustomers``, ``forCustomerContacts``, ``forVacancies``,
    ``forTasks``, ``forSales``, ``forProjects`` (pandas ``boolean`` dtype).

    >>> types = session.document_types()
    >>> types[types.forDocuments & types.forCandidates].name
    """
    what = {"uid": 1, "name": 1, **dict.fromkeys(_FLAGS, 1)}
    rows: list[dict] = []
    offset = 0
    while True:
        args = {"what": what, "limit": _PAGE, "offset": offset, "getTotalCount": True}
        page = session.call("DocumentTypeService.getListEx", args)
        if not isinstance(page, dict) or not isinstance(page.get("listOutput"), list):
            raise ProtocolError(
                "DocumentTypeService.getListEx did not answer {listOutput, totalCount}",
                method="Otys.Services.DocumentTypeService.getListEx",
                body=page,
            )
        batch = page["listOutput"]
        rows.extend(batch)
        offset += len(batch)
        total = _as_int(page.get("totalCount"))
        if not batch or total is None or offset >= total:
            break

    frame = pd.DataFrame(
        {
            "uid": pd.array([_as_str(r.get("uid")) for r in rows], dtype="string"),
            "name": pd.array([_as_str(r.get("name")) for r in rows], dtype="string"),
            **{
                flag: pd.array([_as_bool(r.get(flag)) for r in rows], dtype="boolean")
                for flag in _FLAGS
            },
        }
    )
    frame = frame.drop_duplicates("uid").set_index("uid")
    session._cache["document_types"] = frame
    return frame


def _resolve_type(session: Session, entity: Entity, type_id: Any) -> str:
    """Turn a document type uid or name into a uid allowed for ``entity``'s documents."""
    if isinstance(type_id, bool) or not isinstance(type_id, (str, numbers.Integral)):
        raise InvalidInput(
            f"type_id must be a document type uid or name, got {type_id!r}"
        )
    wanted = str(type_id).strip()
    if not wanted:
        raise InvalidInput("type_id is empty; give a document type uid or name")

    types = session._cache.get("document_types")
    if types is None or wanted not in types.index:
        types = document_types(session)
    usable = types[
        types["forDocuments"].fillna(False) & types[entity.type_flag].fillna(False)
    ]
    choices = [f"{uid} ({name})" for uid, name in usable["name"].items()]

    if wanted in types.index:
        if wanted in usable.index:
            return wanted
        raise InvalidInput(
            f"document type {wanted} ({types.at[wanted, 'name']}) is not for documents "
            f"of a {entity.name}; choose one of:",
            choices,
        )
    folded = wanted.casefold()
    matches = [uid for uid, name in usable["name"].items() if _fold(name) == folded]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidInput(
            f"document type name {wanted!r} is ambiguous for a {entity.name}; "
            "pass one of these uids instead:",
            [f"{uid} ({usable.at[uid, 'name']})" for uid in matches],
        )
    raise InvalidInput(
        f"no document type {wanted!r} usable for documents of a {entity.name}; choose one of:",
        choices,
    )


def attach(
    session: Session,
    entity: Any,
    uid: Any,
    file: Any,
    type_id: Any,
    subject: Any,
    **extra: Any,
) -> str:
    """Bind an uploaded file to the dossier of a record; return the dossier item id.

    Args:
        entity: ``"candidate"``, ``"customer"`` (``"relation"``), ``"customer contact"``
            (``"contact"``), ``"vacancy"``, ``"task"``, ``"sales trajectory"`` or
            ``"project"``; plurals and any case are fine.
        uid: the record's uid.
        file: the file's ouid, or the dict :func:`upload` returned.
        type_id: a document type uid or its name (case-insensitive); it must be
            marked for documents and for this entity.
        subject: the subject shown in the dossier.
        **extra: further ``AttachedDocumentsService.add`` fields
            (``description``, ``private``, ``alwaysOnTop``...).

    >>> info = session.upload("cv.pdf")
    >>> session.attach("candidate", cand_uid, info, "CV", "CV Jan Jansen")
    """
    target = resolve_entity(entity)
    record = _required_text(uid, "uid", f"the {target.name}'s uid")
    if isinstance(file, dict):
        file = file.get("ouid")
    file_uid = _required_text(file, "file", "a file ouid or the dict upload() returned")
    title = _required_text(subject, "subject", "the subject shown in the dossier")
    reserved = {target.key, "fileUid", "typeId", "subject"} & set(extra)
    if reserved:
        raise InvalidInput(
            f"pass {', '.join(sorted(reserved))} through the named arguments, not as extra fields"
        )
    type_uid = _resolve_type(session, target, type_id)

    args = {
        target.key: record,
        "fileUid": file_uid,
        "typeId": type_uid,
        "subject": title,
    }
    args.update(extra)
    result = session.call("AttachedDocumentsService.add", args)
    if result in (None, False, ""):
        raise ProtocolError(
            "AttachedDocumentsService.add answered without a dossier id",
            method="Otys.Services.AttachedDocumentsService.add",
            body=result,
        )
    return str(result)


# ---- dossier listing -------------------------------------------------------------


def documents(session: Session, entity: Any, uid: Any) -> pd.DataFrame:
    """The documents attached to a record's dossier, one row per document.

    Pages with ``DossierService.getCount`` and ``getList`` (``restrictClass``
    ``["AttachedDocs"]``). The columns are the fields the server sends; ``id_rec``
    (the ouid :func:`download` needs) and every other id stay strings.

    >>> docs = session.documents("candidate", cand_uid)
    >>> session.download(docs.id_rec.iloc[0], "downloads/")
    """
    target = resolve_entity(entity)
    record = _required_text(uid, "uid", f"the {target.name}'s uid")
    base = {
        "objectEntityId": target.entity_id,
        "objectUid": record,
        "restrictClass": ["AttachedDocs"],
    }

    total = _as_int(
        session.call("DossierService.getCount", {**base, "limit": _PAGE, "offset": 0})
    )
    if total is None:
        raise ProtocolError("DossierService.getCount did not answer a number")
    rows: list[dict] = []
    while len(rows) < total:
        page = session.call(
            "DossierService.getList", {**base, "limit": _PAGE, "offset": len(rows)}
        )
        batch = _list_rows(page)
        if not batch:
            break
        rows.extend(batch)
    if len(rows) < total:
        log.warning(
            "dossier of %s %s: %d of %d documents listed",
            target.name,
            record,
            len(rows),
            total,
        )
    return _documents_frame(rows)


def _list_rows(page: Any) -> list[dict]:
    if isinstance(page, dict) and isinstance(page.get("listOutput"), list):
        page = page["listOutput"]
    if isinstance(page, dict):
        # A PHP map keyed by id.
        page = list(page.values())
    if not isinstance(page, list) or not all(isinstance(r, dict) for r in page):
        raise ProtocolError(
            "DossierService.getList did not answer a list of records", body=page
        )
    return page


def _documents_frame(rows: list[dict]) -> pd.DataFrame:
    """Type the dossier rows: ids as strings, the rest as the reading path infers them."""
    columns: dict[str, None] = {"id_rec": None}
    for row in rows:
        columns.update(dict.fromkeys(row))
    labels = [str(r.get("uid", i)) for i, r in enumerate(rows)]
    frame = pd.DataFrame(index=pd.RangeIndex(len(rows)))
    for column in columns:
        values = [r.get(column) for r in rows]
        ftype = "string" if _is_id_column(column) else frames.infer_type(values)
        if ftype == "string":
            values = [None if v is None else str(v) for v in values]
        try:
            frame[column] = frames.convert_column(column, values, labels, ftype)
        except OtysError:
            # Values of mixed shapes stay as the server sent them.
            frame[column] = pd.Series(values, dtype="object")
    return frame


def _is_id_column(column: str) -> bool:
    return column in ("id_rec", "uid", "id") or column.endswith(
        ("Uid", "Ouid", "Id", "_id")
    )


# ---- download ------------------------------------------------------------------------


def download(
    session: Session, ouid: Any, dest: Any, *, overwrite: bool = False
) -> Path:
    """Download a file by its ouid (``id_rec`` of :func:`documents`) and return its path.

    Args:
        ouid: the file's ouid.
        dest: a folder (then the server's file name is used, made safe) or a file path.
            A path ending in a separator is taken as a folder and must exist.
        overwrite: replace an existing file; otherwise an existing file is an error.

    The session goes in the ``PHPSESSID`` cookie, never in the URL. The bytes are
    written to a temporary file beside the target, flushed, and renamed into place
    only when complete; an error body (HTML or JSON instead of the file), an HTTP
    error or a dropped connection leaves nothing behind. A name from the server
    cannot leave ``dest``: folders, ``..``, control characters are stripped, and
    an unusable name falls back to the ouid.

    >>> session.download(docs.id_rec.iloc[0], "downloads/")
    PosixPath('downloads/cv.pdf')
    """
    file_ouid = _required_text(ouid, "ouid", "the file's ouid (id_rec of documents())")
    folder, target = _destination(dest, overwrite)

    # A refused session is retried once, after a fresh login.
    try:
        return _fetch(session, file_ouid, folder, target, overwrite)
    except AccessDenied:
        _relogin(session)
    return _fetch(session, file_ouid, folder, target, overwrite)


def _destination(dest: Any, overwrite: bool) -> tuple[Path, Path | None]:
    """Split ``dest`` into (folder, explicit target or None), checking both."""
    if not isinstance(dest, (str, os.PathLike)) or not str(dest).strip():
        raise InvalidInput(f"dest must be a folder or a file path, got {dest!r}")
    text = os.fspath(dest)
    path = Path(text).expanduser()
    if path.is_dir():
        return path, None
    if text.endswith(("/", os.sep)):
        raise InvalidInput(f"destination folder {text!r} does not exist")
    if not path.parent.is_dir():
        raise InvalidInput(f"the folder of {text!r} does not exist")
    if path.exists() and not overwrite:
        raise _exists_error(path)
    return path.parent, path


def _exists_error(path: Path) -> InvalidInput:
    return InvalidInput(
        f"{str(path)!r} already exists; pass overwrite=True to replace it"
    )


def _fetch(
    session: Session, ouid: str, folder: Path, target: Path | None, overwrite: bool
) -> Path:
    """One download attempt: request, check the answer, stream to a temp file, rename."""
    started = time.monotonic()
    try:
        response = session.http.get(
            session.download_url,
            params={"ouid": ouid, "class": "AttachedDocument"},
            cookies={"PHPSESSID": _token(session)},
            stream=True,
            timeout=_timeout(session),
            verify=_verify(session),
        )
    except requests.RequestException as exc:
        raise FileTransferError(
            f"downloading file {ouid} failed: {type(exc).__name__}; nothing was written"
        ) from exc

    with response:
        log.debug("download %s: HTTP %s", ouid, response.status_code)
        _check_download_answer(response, ouid)
        if target is None:
            target = folder / _server_filename(response, ouid)
            if target.exists() and not overwrite:
                raise _exists_error(target)
        size = _stream_to(response, target, overwrite, ouid)
    log.debug("download %s: %d bytes in %.2fs", ouid, size, time.monotonic() - started)
    return target


def _check_download_answer(response: requests.Response, ouid: str) -> None:
    """Raise unless the response carries the file itself."""
    status = response.status_code
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    attached = "attachment" in response.headers.get("Content-Disposition", "").lower()
    if status == 200 and (attached or not kind.startswith(_ERROR_TYPES)):
        return

    excerpt = _read_excerpt(response)
    if status in (401, 403) or "access denied" in excerpt.lower():
        raise AccessDenied(
            f"the download of file {ouid} was refused: {abbreviate(excerpt)}",
            code=status,
        )
    if status == 404 or "not found" in excerpt.lower():
        raise NotFound(f"no file {ouid}: {abbreviate(excerpt)}", code=status)
    if status != 200:
        raise FileTransferError(
            f"downloading file {ouid} failed with HTTP {status}: {abbreviate(excerpt)}; "
            "nothing was written"
        )
    raise FileTransferError(
        f"downloading file {ouid} returned a {kind} error page instead of the file: "
        f"{abbreviate(excerpt)}; nothing was written"
    )


def _read_excerpt(response: requests.Response, limit: int = 4096) -> str:
    try:
        raw = response.raw.read(limit, decode_content=True)
    except Exception:  # the body is only used to explain an error
        return ""
    return raw.decode(response.encoding or "utf-8", errors="replace")


def _stream_to(
    response: requests.Response, target: Path, overwrite: bool, ouid: str
) -> int:
    """Write the body to a temp file beside ``target`` and rename it in when complete.

    Content-Length counts the bytes as sent, which for a compressed body
    (Content-Encoding gzip or deflate, undone by requests) are fewer than the
    file's; the check compares it with the bytes read from the connection.
    """
    expected = _as_int(response.headers.get("Content-Length"))
    handle, temp_name = tempfile.mkstemp(
        prefix=".otyspd-", suffix=".part", dir=target.parent
    )
    temp = Path(temp_name)
    try:
        written = 0
        with os.fdopen(handle, "wb") as out:
            for chunk in response.iter_content(_CHUNK):
                out.write(chunk)
                written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        received = _bytes_on_the_wire(response, written)
        if expected is not None and received is not None and received != expected:
            raise FileTransferError(
                f"downloading file {ouid} stopped after {received:,} of {expected:,} "
                f"bytes{' (as sent, compressed)' if _encoded(response) else ''}; "
                "nothing was written"
            )
        _move_into_place(temp, target, overwrite)
    except requests.RequestException as exc:
        temp.unlink(missing_ok=True)
        raise FileTransferError(
            f"the connection dropped while downloading file {ouid} ({type(exc).__name__}); "
            "nothing was written"
        ) from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _sync_folder(target.parent)
    return written


def _encoded(response: requests.Response) -> bool:
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    return encoding not in ("", "identity")


def _bytes_on_the_wire(response: requests.Response, written: int) -> int | None:
    """The body's bytes as sent (before decompression); None when unknown."""
    tell = getattr(response.raw, "tell", None)
    if callable(tell):
        with contextlib.suppress(Exception):
            count = tell()
            if isinstance(count, int):
                return count
    # without a count of the raw bytes, only an unencoded body can be checked
    return None if _encoded(response) else written


def _move_into_place(temp: Path, target: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, target)
        return
    # A hard link fails if the target appeared meanwhile, so nothing is clobbered.
    try:
        os.link(temp, target)
    except FileExistsError:
        raise _exists_error(target) from None
    except OSError:
        if target.exists():
            raise _exists_error(target) from None
        os.replace(temp, target)
        return
    temp.unlink()


def _sync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _server_filename(response: requests.Response, ouid: str) -> str:
    """The file name of Content-Disposition (``filename*`` wins over ``filename``), made safe."""
    message = Message()
    message["Content-Disposition"] = response.headers.get("Content-Disposition", "")
    plain, extended = None, None
    for key, value in message.get_params([], header="content-disposition")[1:]:
        if key.lower() != "filename":
            continue
        if isinstance(value, tuple):
            extended = collapse_rfc2231_value(value)
        else:
            plain = value
    return safe_filename(extended or plain, fallback=ouid)


_UNSAFE = re.compile(r'[<>:"|?*]')


def safe_filename(name: Any, fallback: str = "download") -> str:
    """Make a file name from a server safe to use inside a folder.

    Keeps only the last path component, drops control characters and NUL,
    replaces characters Windows refuses, strips leading dots and spaces (so no
    ``..`` and no hidden files), and falls back to ``fallback`` when nothing
    usable is left.

    >>> safe_filename("../../etc/passwd"), safe_filename("..", fallback="f1")
    ('passwd', 'f1')
    """
    cleaned = _clean_name(name) if isinstance(name, str) else ""
    if not cleaned:
        cleaned = _clean_name(fallback) or "download"
    return cleaned


def _clean_name(name: str) -> str:
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip().lstrip(". ").rstrip(". ")
    while len(name.encode("utf-8")) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:-1] + dot + ext) if dot and len(ext) < 16 and stem else name[:-1]
    return name


# ---- small helpers -------------------------------------------------------------------


def _token(session: Session) -> str:
    """The session token to send, logging in first if there is none."""
    return session._transport.current_token()


def _relogin(session: Session) -> None:
    """Get a fresh session token after the file service refused the current one."""
    session._transport.refresh_token(session._transport.token)


def _is_access_denied(body: Any) -> bool:
    if not isinstance(body, dict) or "error" not in body:
        return False
    error = body["error"]
    message = error.get("message") if isinstance(error, dict) else error
    return isinstance(message, str) and message.lower().startswith("access denied")


def _timeout(session: Session) -> float | tuple[float, float]:
    """The transport's timeout: seconds, or a (connect, read) pair."""
    return session._transport.timeout


def _verify(session: Session) -> bool | str:
    """TLS verification as the transport does it (True, False or a CA bundle path)."""
    return session._transport.verify


def _required_text(value: Any, name: str, what: str) -> str:
    if (
        isinstance(value, bool)
        or not isinstance(value, (str, numbers.Integral))
        or not str(value).strip()
    ):
        raise InvalidInput(f"{name} must be {what}, got {value!r}")
    return str(value).strip()


def _as_str(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return pd.NA
    return str(value)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_bool(value: Any) -> Any:
    if value is None:
        return pd.NA
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "y"):
            return True
        if text in ("0", "false", "no", "n", ""):
            return False
        return pd.NA
    return bool(value)


def _fold(value: Any) -> str:
    return re.sub(r"\s+", " ", str(value)).strip().casefold()
