"""Field definitions read from the server's field list pages (manual 2.4).

OWS documents every service's fields on an HTML page,
``<base>/info/detail.php?service=Otys.Services.CandidateService``, behind HTTP
basic auth with the OTYS username and password (not the API key). Each row
gives a field's name, type and the manual's attributes (listable, filterable,
sortable, updatable, obligatory, deletable, insertable, has options, not
empty, in list by default, comments).

This module reads that table with the standard library's HTML parser. The
real page's markup is not published in machine-readable form, so reading it is
best effort: headers are matched loosely (case, spacing, punctuation), booleans
may be ``yes``/``no``, ``1``/``0``, ``true``/``false``, check marks or checkbox
inputs, and nested fields may be given by dotted name or by a row level. A
field is taken as multilingual from a column of that name or, lacking one, from
a comment that opens with "Multilingual". When the page cannot be read,
:func:`fields_frame` raises a clear error and :func:`field_defs` answers None,
so that reading and writing fall back to inferring types from the data.

Credentials come from ``connect(username=..., password=...)``, else from the
``OTYS_USERNAME`` and ``OTYS_PASSWORD`` environment variables; a sandbox
session knows its own.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import requests

from .errors import (
    ConfigurationError,
    HTTPStatusError,
    OtysError,
    ProtocolError,
    RequestTimeout,
    TransportError,
    abbreviate,
)
from .schema import (
    FIELD_ATTRIBUTES,
    FIELD_TYPES,
    FieldDef,
    full_service,
    short_service,
)

if TYPE_CHECKING:
    from .session import Session

__all__ = ["field_defs", "fields_frame", "info_url", "parse_field_page", "type_name"]

log = logging.getLogger(__name__)

_TIMEOUT = 30.0
#: Columns of :func:`fields_frame`, after the ``name`` index: FieldDef's attributes.
COLUMNS = tuple(name for name in FIELD_ATTRIBUTES if name != "name")
_TEXTS = ("type", "type_comment", "comment")
# The yes/no attributes, in the manual's order.
_FLAGS = tuple(name for name in COLUMNS if name not in _TEXTS)

# Header text, squeezed to lower-case letters, -> FieldDef attribute.
_HEADERS = {
    "name": "name",
    "field": "name",
    "fieldname": "name",
    "type": "type",
    "datatype": "type",
    "fieldtype": "type",
    "listable": "listable",
    "filterable": "filterable",
    "sortable": "sortable",
    "updatable": "updatable",
    "updateable": "updatable",
    "obligatory": "obligatory",
    "mandatory": "obligatory",
    "required": "obligatory",
    "deletable": "deletable",
    "deleteable": "deletable",
    "insertable": "insertable",
    "hasoptions": "has_options",
    "options": "has_options",
    "notempty": "not_empty",
    "inlistbydefault": "in_list_by_default",
    "listbydefault": "in_list_by_default",
    "defaultinlist": "in_list_by_default",
    "multilingual": "multilingual",
    "languagedependent": "multilingual",
    "datatypecomment": "type_comment",
    "typecomment": "type_comment",
    "comment": "comment",
    "comments": "comment",
    "remarks": "comment",
}

_TRUE = {
    "yes",
    "y",
    "true",
    "t",
    "1",
    "on",
    "checked",
    "x",
    "✓",
    "✔",
    "☑",
    "✅",
    "ja",
    "j",
}
_FALSE = {
    "no",
    "n",
    "false",
    "f",
    "0",
    "off",
    "unchecked",
    "",
    "-",
    "–",
    "✗",
    "✘",
    "☐",
    "nee",
}

# Type names seen on field pages or in other OTYS code -> otyspd.schema.FIELD_TYPES.
_TYPES = {
    "int": "integer",
    "integer": "integer",
    "number": "integer",
    "long": "integer",
    "smallint": "integer",
    "bigint": "integer",
    "tinyint": "integer",
    "id": "integer",
    "float": "float",
    "double": "float",
    "decimal": "float",
    "real": "float",
    "numeric": "float",
    "money": "float",
    "bool": "boolean",
    "boolean": "boolean",
    "datetime": "datetime",
    "timestamp": "datetime",
    "date": "date",
    "string": "string",
    "str": "string",
    "varchar": "string",
    "char": "string",
    "email": "string",
    "url": "string",
    "time": "string",
    "text": "text",
    "longtext": "text",
    "mediumtext": "text",
    "html": "text",
    "collection": "collection",
    "array": "collection",
    "list": "collection",
    "container": "container",
    "object": "container",
    "struct": "container",
    "map": "container",
}


def type_name(raw: Any) -> str:
    """Map a type name from a field page onto :data:`otyspd.schema.FIELD_TYPES`.

    Unknown names are read as ``string`` (the conservative choice for reading
    and writing).

    >>> type_name("Integer"), type_name("varchar(255)"), type_name("date time")
    ('integer', 'string', 'datetime')
    """
    text = str(raw or "").strip().lower()
    squeezed = re.sub(r"[^a-z]", "", text.split("(")[0])
    if squeezed in _TYPES:
        return _TYPES[squeezed]
    if squeezed in FIELD_TYPES:
        return squeezed
    log.debug("unknown field type %r read as string", raw)
    return "string"


# ---- the HTML table -------------------------------------------------------------------


@dataclass
class _Cell:
    header: bool
    attrs: dict
    text: list[str] = field(default_factory=list)
    checked: bool | None = None

    @property
    def value(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.text)).strip()


@dataclass
class _Row:
    attrs: dict
    cells: list[_Cell] = field(default_factory=list)


class _TableReader(HTMLParser):
    """Collect every table as rows of cells (text, checkbox state, attributes)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[_Row]] = []
        self._stack: list[list[_Row]] = []
        self._cell: _Cell | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k.lower(): (v if v is not None else "") for k, v in attrs}
        if tag == "table":
            self._stack.append([])
            self.tables.append(self._stack[-1])
        elif not self._stack:
            return
        elif tag == "tr":
            self._stack[-1].append(_Row(attributes))
            self._cell = None
        elif tag in ("td", "th"):
            if not self._stack[-1]:
                self._stack[-1].append(_Row({}))
            self._cell = _Cell(tag == "th", attributes)
            self._stack[-1][-1].cells.append(self._cell)
        elif self._cell is not None:
            self._inline(tag, attributes)

    def _inline(self, tag: str, attributes: dict) -> None:
        if tag == "input" and attributes.get("type", "").lower() in (
            "checkbox",
            "radio",
        ):
            self._cell.checked = "checked" in attributes
        elif tag == "img" and attributes.get("alt"):
            self._cell.text.append(attributes["alt"])
        elif tag == "br":
            self._cell.text.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._stack:
            self._stack.pop()
            self._cell = None
        elif tag in ("td", "th", "tr"):
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.text.append(data)


def parse_field_page(html: str) -> dict[str, FieldDef]:
    """Read a field list page into field definitions by dotted name.

    Raises:
        ProtocolError: no table with at least a name and a type column, an
            unreadable boolean, or no field rows.
    """
    reader = _TableReader()
    reader.feed(html)
    reader.close()

    for table in reader.tables:
        header_at = _header_row(table)
        if header_at is None:
            continue
        index, columns = header_at
        defs = _read_rows(table[index + 1 :], columns)
        if defs:
            return defs
    raise ProtocolError(
        "the field list page has no table with 'name' and 'type' columns and field rows",
        body=html,
    )


def _header_row(table: list[_Row]) -> tuple[int, dict[int, str]] | None:
    """Find the row naming the columns; map column position -> attribute."""
    for index, row in enumerate(table[:5]):
        columns: dict[int, str] = {}
        position = 0
        for cell in row.cells:
            key = _HEADERS.get(re.sub(r"[^a-z]", "", cell.value.lower()))
            if key and key not in columns.values():
                columns[position] = key
            position += _span(cell)
        if {"name", "type"} <= set(columns.values()):
            return index, columns
    return None


def _read_rows(rows: list[_Row], columns: dict[int, str]) -> dict[str, FieldDef]:
    defs: dict[str, FieldDef] = {}
    parents: list[str] = []
    for number, row in enumerate(rows, start=1):
        cells = _by_position(row)
        raw_name = cells.get(_position(columns, "name"))
        name = _field_name(raw_name.value if raw_name else "")
        if not name or all(c.header for c in row.cells):
            continue

        # Nested rows: a dotted name says it all, else a row level or parent attribute.
        if "." in name:
            parents[:] = name.split(".")
        else:
            name = _nest(name, row, raw_name, parents)
        attrs: dict[str, Any] = {"name": name}
        for position, key in columns.items():
            cell = cells.get(position)
            if key == "name":
                continue
            if key == "type":
                attrs["type"] = type_name(cell.value if cell else "")
            elif key in ("type_comment", "comment"):
                attrs[key] = cell.value if cell else ""
            else:
                attrs[key] = _flag(cell, f"row {number} ({name}), column {key}")
        if "multilingual" not in attrs:
            # Without a column of its own, a comment opening "Multilingual" says so.
            attrs["multilingual"] = (
                attrs.get("comment", "").lower().startswith("multilingual")
            )
        defs[name] = FieldDef(**attrs)
    return defs


def _span(cell: _Cell) -> int:
    try:
        return max(1, int(cell.attrs.get("colspan", 1)))
    except ValueError:
        return 1


def _by_position(row: _Row) -> dict[int, _Cell]:
    cells: dict[int, _Cell] = {}
    position = 0
    for cell in row.cells:
        cells[position] = cell
        position += _span(cell)
    return cells


def _position(columns: dict[int, str], key: str) -> int:
    return next(p for p, k in columns.items() if k == key)


def _field_name(text: str) -> str:
    """Keep the name itself: no toggle arrows, bullets or spacing around it."""
    return "".join(re.findall(r"[A-Za-z0-9_.\-]+", text)).strip(".-")


_LEVEL = re.compile(r"(?:level|depth|indent)[-_]?(\d+)")


def _nest(name: str, row: _Row, cell: _Cell | None, parents: list[str]) -> str:
    """Prefix a bare child name with its parent, from a parent attribute or a row level.

    ``parents`` holds the path of the previous row, so a row at level 2 takes
    that path's first two parts as its parents.
    """
    parent = row.attrs.get("data-parent") or (
        cell.attrs.get("data-parent") if cell else ""
    )
    level = _level(row)
    if level is None and cell is not None:
        level = _level(cell)
    if parent:
        full = f"{_field_name(parent)}.{name}"
    elif level and len(parents) >= level:
        full = ".".join([*parents[:level], name])
    else:
        full = name
    parents[:] = full.split(".")
    return full


def _level(holder: Any) -> int | None:
    attrs = holder.attrs if holder is not None else {}
    for key in ("data-level", "data-depth", "aria-level"):
        if str(attrs.get(key, "")).strip().isdigit():
            value = int(attrs[key])
            return value - 1 if key == "aria-level" else value
    match = _LEVEL.search(attrs.get("class", ""))
    return int(match.group(1)) if match else None


def _flag(cell: _Cell | None, where: str) -> bool:
    if cell is None:
        return False
    if cell.checked is not None:
        return cell.checked
    text = cell.value.lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ProtocolError(
        f"the field list page has an unreadable yes/no value {cell.value!r} at {where}"
    )


# ---- fetching and caching ------------------------------------------------------------


def info_url(session: Session) -> str:
    """The field list page address beside the session's endpoint (same scheme, host, folder)."""
    parts = urlsplit(session.url)
    folder = parts.path.rsplit("/", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc, f"{folder}/info/detail.php", "", ""))


def _credentials(session: Session) -> tuple[str, str]:
    """The basic-auth pair: the session's own, else OTYS_USERNAME / OTYS_PASSWORD."""
    for username, password in (
        (getattr(session, "username", None), getattr(session, "password", None)),
        (os.environ.get("OTYS_USERNAME"), os.environ.get("OTYS_PASSWORD")),
    ):
        if isinstance(username, str) and username and isinstance(password, str):
            return username, password
    raise ConfigurationError(
        "reading field definitions needs the OTYS username and password (not the API key): "
        "pass connect(username=..., password=...) or set OTYS_USERNAME and OTYS_PASSWORD"
    )


def _fetch_page(session: Session, service: str) -> str:
    url = info_url(session)
    name = full_service(service)
    try:
        response = session.http.get(
            url,
            params={"service": name},
            auth=_credentials(session),
            timeout=getattr(getattr(session, "_transport", None), "timeout", _TIMEOUT),
            verify=getattr(getattr(session, "_transport", None), "verify", True),
        )
    except requests.Timeout as exc:
        raise RequestTimeout(
            f"the field list page of {name} did not answer in time"
        ) from exc
    except requests.RequestException as exc:
        raise TransportError(
            f"the field list page of {name} could not be read: {type(exc).__name__}"
        ) from exc
    log.debug("field page %s: HTTP %s", name, response.status_code)

    if response.status_code == 401:
        raise ConfigurationError(
            "the field list pages refused the username and password (HTTP 401); "
            "check connect(username=..., password=...) or OTYS_USERNAME and "
            "OTYS_PASSWORD"
        )
    if response.status_code != 200:
        raise HTTPStatusError(
            f"the field list page of {name} answered HTTP {response.status_code}: "
            f"{abbreviate(response.text)}",
            status=response.status_code,
        )
    kind = response.headers.get("Content-Type", "").lower()
    if "html" not in kind:
        raise ProtocolError(
            f"the field list page of {name} is not HTML ({kind or 'no type'})"
        )
    return response.text


def _read_defs(session: Session, service: str) -> dict[str, FieldDef]:
    key = ("field_defs", short_service(service))
    cached = session._cache.get(key)
    if cached is not None:
        return cached
    defs = parse_field_page(_fetch_page(session, service))
    session._cache[key] = defs
    return defs


def field_defs(session: Session, service: str) -> dict[str, FieldDef] | None:
    """The field definitions of ``service`` by dotted name, or None when unreadable.

    Cached per session. None (logged at DEBUG) means the page could not be read
    (no credentials, an error, an unknown layout); callers then infer types.
    """
    key = ("field_defs", short_service(service))
    if key in session._cache:
        return session._cache[key]
    try:
        defs = _read_defs(session, service)
    except OtysError as exc:
        log.debug("no field definitions for %s: %s", key[1], exc)
        session._cache[key] = None
        return None
    return defs


def fields_frame(session: Session, service: str) -> pd.DataFrame:
    """The field definitions of ``service`` as a DataFrame indexed by dotted name.

    Columns: ``type`` and the manual's attributes (``listable``, ``filterable``,
    ``sortable``, ``updatable``, ``obligatory``, ``deletable``, ``insertable``,
    ``has_options``, ``not_empty``, ``in_list_by_default``, ``multilingual``) as
    booleans, then ``type_comment`` and ``comment``.

    Raises:
        ConfigurationError: no username/password, or they were refused.
        HTTPStatusError, TransportError: the page could not be fetched.
        ProtocolError: the page could not be read as a field table.

    >>> session.fields("Candidate").query("updatable and not has_options").index
    """
    defs = _read_defs(session, service)
    rows = [d.as_row() for d in defs.values()]
    frame = pd.DataFrame(rows, columns=["name", *COLUMNS])
    frame = frame.set_index(pd.Index(frame.pop("name"), name="name", dtype="string"))
    for column in COLUMNS:
        dtype = "boolean" if column in _FLAGS else "string"
        frame[column] = frame[column].astype(dtype)
    return frame
