"""Write the edits made to a DataFrame back to OWS, cell by cell, safely.

The path from two frames to the server, one step each:

1. **diff**: compare the frame as it was read (``original``) with the edited
   one, cell by cell and type-aware: missing is missing whatever its spelling
   (None, NaN, NaT, ``pd.NA``), ``5`` equals ``5.0``, text is compared in
   Unicode NFC, datetimes as instants in Europe/Amsterdam, dates as dates,
   label columns as labels. In a text field (``string``, ``text``, or a
   column of unknown type) empty text ``""`` is missing too, as the server
   treats them alike: ``""`` against None/NaN is no change either way, so a
   CSV round trip or ``fillna("")`` sends nothing for those cells. Clearing
   text (``"abc"`` to NaN or to ``""``) is a change, sent as null.
2. **validate**: every problem (unknown column, read-only field, a label that
   maps to no id or to several, a value of the wrong type, blank text in a
   not-empty field, text that is not valid UTF-8, an integer beyond 64 bits,
   duplicate uids, an index that is not uids, an ``exclude`` entry that names
   no change) is collected, and one :class:`InvalidInput` lists them all
   before anything is sent.
3. **check**: the server's current values of the changed fields are read again
   (``getDetail`` in MultiService batches, asking only those fields). A cell
   the server changed since it was read is a *conflict* and is held back
   unless ``force=True``; a cell the server already holds as edited is
   *unchanged* and not sent again, which is what makes a re-run safe.
4. **write**: one ``update`` per record with only its changed fields, nested
   again (``Person.firstName`` -> ``{"Person": {"firstName": ...}}``), in
   MultiService batches. A refused record does not stop the others. When a
   batch gets no answer, its records are read again to learn what landed.
5. **report**: a :class:`WriteReport` with one row per cell and its status,
   a journal of before and after values, and :meth:`WriteReport.undo`.

Rows and records:

- An ``edited`` row whose index is missing (None, NaN, empty) or starts with
  ``"new"`` (``"new1"``, ``"new-a"``) is a new record: sent with ``add`` when
  ``allow_add=True``, else rejected. Any other index value that is not in
  ``original`` is rejected as an unknown uid.
- A row of ``original`` missing from ``edited`` is deleted only with
  ``allow_delete=True``; otherwise it is reported as ``skipped`` and left alone.
  Undo cannot bring a deleted record back; the journal keeps its read values.
- A report counts rows, which are cells: an added record counts once per field.
- Columns of ``original`` missing from ``edited`` are not touched.

Other choices:

- A dry run reads the server's current values (so its plan already leaves out
  conflicts and cells the server holds) but sends no write.
- Changed text is sent in NFC; a cleared cell is sent as null, never as NaN.
- Naive datetimes are taken as server time (Europe/Amsterdam).
- A date field takes a zoned timestamp's own calendar date, unconverted:
  ``Timestamp("1990-02-03", tz="UTC")`` sets 1990-02-03. One with a time
  other than midnight in its own zone is refused.
- An ``add`` that gets no answer is never repeated: it is reported as
  ``unknown``, since only a look at the server can tell whether it landed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import logging
import math
import re
import time
import unicodedata
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInput, NotFound, OtysError
from .frames import is_missing, known_field_defs, nest_changes
from .journal import (
    RECORD,
    STATUSES,
    Journal,
    UndoWarning,
    WriteReport,
    journal_entry,
    refuse_unknown_options,
    undo_journal,
)
from .progress import progress_bar
from .schema import short_service

__all__ = [
    "STATUSES",
    "UndoWarning",
    "WriteReport",
    "diff",
    "undo_journal",
    "write_back",
]

log = logging.getLogger(__name__)


TZ = "Europe/Amsterdam"
DEFAULT_BATCH_SIZE = 50
_WRITE_OPTIONS = (
    "dry_run",
    "force",
    "allow_add",
    "allow_delete",
    "journal",
    "batch_size",
    "progress",
    "exclude",
)
_READ_ONLY = frozenset({"uid", "internalId"})
_SCALAR_KINDS = ("string", "text", "integer", "float", "boolean", "date", "datetime")
# Kinds in which empty text and missing are the same value.
_TEXT_KINDS = ("string", "text", "any")
# An integer field holds a signed 64-bit number; a bigger one would be cut or rounded.
_INT64 = (-(2**63), 2**63 - 1)


class _Bad(ValueError):
    """A value that does not fit its column's type (the text says why)."""


class _TypeProblem(str):
    """A problem text that says a value does not fit its column's type."""


# Text that a column which lost its type (a CSV read as text) holds for a
# number: an optional sign and ASCII digits; for a float also a point and exponent.
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOOLEAN_TEXT = {
    "True": True,
    "true": True,
    "1": True,
    "False": False,
    "false": False,
    "0": False,
}
_LOST_TYPES_HINT = (
    "Some columns of edited lost their types (for example through CSV): restore them "
    "with `edited = edited.astype(original.dtypes)` or read the CSV with the "
    "original's dtypes."
)


class _AnyOf:
    """Stands for "one of these ids": the old value of a label shared by several ids."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.ids = frozenset(ids)

    def __eq__(self, other: object) -> bool:
        return other in self.ids

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "one of " + ", ".join(sorted(self.ids))


# ---- values ----------------------------------------------------------------


def _show(value: Any) -> str:
    """A short, readable rendering of a value for a problem message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _utf8_text(text: str) -> str:
    """The text in NFC, refused when it cannot travel as UTF-8 (a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _Bad(
            f"the text cannot be encoded as UTF-8: a lone surrogate "
            f"{text[exc.start]!r} at position {exc.start} of {_show(text)}"
        ) from None
    return _nfc(text)


def _is_empty(value: Any, kind: str) -> bool:
    """Missing, or empty text in a text field (the server holds both as no value)."""
    if is_missing(value):
        return True
    return kind in _TEXT_KINDS and isinstance(value, str) and value == ""


def _is_blank(value: Any) -> bool:
    """Missing, or text of nothing but whitespace: what a not-empty field refuses."""
    return is_missing(value) or (isinstance(value, str) and value.strip() == "")


def _as_timestamp(value: Any) -> pd.Timestamp | None:
    if isinstance(value, (pd.Timestamp, dt.datetime, np.datetime64)):
        return pd.Timestamp(value)
    if isinstance(value, dt.date):
        return pd.Timestamp(value.year, value.month, value.day)
    return None


def _local(ts: pd.Timestamp) -> pd.Timestamp:
    """Express an instant in server time; a naive time is taken as server time already."""
    return ts.tz_convert(TZ).tz_localize(None) if ts.tzinfo is not None else ts


def _parse_text_time(value: str, lenient: bool) -> pd.Timestamp:
    text = value.strip()
    if text.startswith("0000-00-00"):
        raise _Bad("a zero date")
    try:
        parsed = dt.datetime.fromisoformat(text.replace("/", "-") if lenient else text)
    except ValueError:
        raise _Bad(f"{_show(value)} is not a date (use YYYY-MM-DD)") from None
    return pd.Timestamp(parsed)


def _canon_number(value: Any, kind: str, lenient: bool) -> int | float:
    if isinstance(value, (bool, np.bool_)):
        raise _Bad(f"expected a number, got the boolean {_show(value)}")
    if lenient and isinstance(value, str):
        try:
            value = float(value) if kind == "float" or "." in value else int(value)
        except ValueError:
            raise _Bad(f"expected a number, got {_show(value)}") from None
    elif isinstance(value, str):
        # A number held as text, as a CSV read with dtype=str gives it.
        if kind == "integer" and _INTEGER_TEXT.fullmatch(value):
            return int(value)
        if kind == "float" and _FLOAT_TEXT.fullmatch(value):
            return _canon_number(float(value), kind, lenient)
        raise _Bad(f"expected a number, got str {_show(value)}")
    if isinstance(value, (int, np.integer)):
        return float(value) if kind == "float" else int(value)
    if isinstance(value, (float, np.floating, Decimal)):
        if not math.isfinite(value):
            raise _Bad(f"{_show(value)} cannot be sent (not a finite number)")
        if kind == "float":
            return float(value)
        if value == int(value):
            return int(value)
        if kind == "integer":
            raise _Bad(f"expected a whole number, got {_show(value)}")
        return float(value)
    raise _Bad(f"expected a number, got {type(value).__name__} {_show(value)}")


def _canon_boolean(value: Any, lenient: bool) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, str) and value in _BOOLEAN_TEXT:
        return _BOOLEAN_TEXT[value]  # as a CSV read with dtype=str gives it
    if (
        lenient
        and isinstance(value, str)
        and value.strip().lower() in {"1", "0", "true", "false"}
    ):
        return value.strip().lower() in {"1", "true"}
    raise _Bad(f"expected true or false, got {_show(value)}")


def _canon_date(value: Any, lenient: bool) -> str:
    if isinstance(value, str):
        if lenient and value.strip()[:10] == "0000-00-00":
            raise _Bad("a zero date")
        ts = _parse_text_time(value[:10] if lenient else value, lenient)
    else:
        ts = _as_timestamp(value)
        if ts is None:
            raise _Bad(f"expected a date, got {type(value).__name__} {_show(value)}")
    # A date has no time zone: a zoned value gives the date on its own calendar,
    # never converted to server time first (UTC midnight stays that day).
    if not lenient and ts != ts.normalize():
        zone = f" in its own time zone ({ts.tzinfo})" if ts.tzinfo is not None else ""
        raise _Bad(
            f"a date field cannot hold a time: {_show(value)} has the time "
            f"{ts:%H:%M:%S}{zone}"
        )
    return ts.strftime("%Y-%m-%d")


def _canon_datetime(value: Any, lenient: bool) -> str:
    ts = (
        _parse_text_time(value, lenient)
        if isinstance(value, str)
        else _as_timestamp(value)
    )
    if ts is None:
        raise _Bad(
            f"expected a date and time, got {type(value).__name__} {_show(value)}"
        )
    return _local(ts).strftime("%Y-%m-%d %H:%M:%S")


def _canon_any(value: Any) -> Any:
    """Canonical form when the column's type is unknown: judged by the value itself."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating, Decimal)):
        return _canon_number(value, "any", False)
    if isinstance(value, str):
        return _utf8_text(value) if value else None
    ts = _as_timestamp(value)
    if ts is not None:
        if ts.tzinfo is None and ts == ts.normalize():
            return ts.strftime("%Y-%m-%d")
        return _local(ts).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, dict, tuple)):
        return _Structure(value)
    raise _Bad(f"cannot send a {type(value).__name__} value {_show(value)}")


class _Structure:
    """A list or dict, compared by content (written only through its dotted fields)."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.key = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Structure) and other.key == self.key

    __hash__ = None  # type: ignore[assignment]


def canonical(value: Any, kind: str, *, lenient: bool = False) -> Any:
    """The value as it goes on the wire, or None when it is missing.

    ``kind`` is a field type (``string``, ``integer``, ``date``...), ``label``
    for an option id, or ``any`` when the type is unknown. ``lenient`` accepts
    the looser shapes the server sends (``"1"`` for true, ``"12"`` for 12,
    ``0000-00-00`` for no date); user input is judged strictly. Empty text
    in a text field is None as well. Raises ``ValueError`` (a private
    subclass) when the value does not fit.
    """
    if is_missing(value) or (
        kind in _TEXT_KINDS and isinstance(value, str) and not value
    ):
        return None
    try:
        if kind in ("string", "text"):
            if isinstance(value, str):
                return _nfc(value) if lenient else _utf8_text(value)
            if (
                lenient
                and isinstance(value, (int, np.integer))
                and not isinstance(value, bool)
            ):
                return str(value)
            raise _Bad(f"expected text, got {type(value).__name__} {_show(value)}")
        if kind == "label":
            if isinstance(value, (str, int, np.integer)) and not isinstance(
                value, bool
            ):
                return str(value)
            raise _Bad(f"expected an option id, got {_show(value)}")
        if kind in ("integer", "float"):
            number = _canon_number(value, kind, lenient)
            if (
                kind == "integer"
                and not lenient
                and not (_INT64[0] <= number <= _INT64[1])
            ):
                raise _Bad(
                    f"{_show(value)} is outside the range of an integer field "
                    "(a signed 64-bit number, -2**63 to 2**63-1)"
                )
            return number
        if kind == "boolean":
            return _canon_boolean(value, lenient)
        if kind == "date":
            return _canon_date(value, lenient)
        if kind == "datetime":
            return _canon_datetime(value, lenient)
        if kind in ("collection", "container"):
            return _Structure(value)
        return _canon_any(value)
    except _Bad as bad:
        if lenient and str(bad) == "a zero date":
            return None
        raise


def _pluck(data: Any, path: str) -> Any:
    """The value at a dotted path of a server record, or None when it is absent."""
    node = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _what(fields: Iterable[str]) -> dict[str, Any]:
    return nest_changes({name: 1 for name in fields})


# ---- columns ---------------------------------------------------------------


@dataclass
class _Column:
    """What write-back knows about one column: its kind, labels and whether it may be written."""

    name: str
    kind: str  # a field type, "label" or "any"
    base: str = "any"  # for labels: the field's own type
    labels: dict[str, str] | None = None  # option id -> label
    read_only: str | None = None  # why it cannot be updated
    fdef: Any = None  # the field definition, when the server shows them

    def label_ids(self) -> dict[str, list[str]]:
        """Label (NFC) -> every id carrying it."""
        inverse: dict[str, list[str]] = {}
        for option_id, label in (self.labels or {}).items():
            inverse.setdefault(_nfc(str(label)), []).append(str(option_id))
        return inverse

    def wire_id(self, option_id: str) -> Any:
        """An option id as the server takes it: a number for integer fields."""
        if self.base == "integer" and option_id.lstrip("-").isdigit():
            return int(option_id)
        return option_id

    def label_of(self, option_id: Any) -> Any:
        if option_id is None or not self.labels:
            return option_id
        return self.labels.get(str(option_id), option_id)


def _kind_from_dtype(series: pd.Series) -> str:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "label"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "datetime"
    if pd.api.types.is_datetime64_dtype(dtype):
        stamps = series.dropna()
        return "date" if (stamps == stamps.dt.normalize()).all() else "datetime"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "string"
    return "any"


def _describe_columns(
    original: pd.DataFrame, meta: dict[str, Any], defs: dict[str, Any] | None
) -> dict[str, _Column]:
    """Decide each column's kind: the read's own notes first, then field definitions, then dtypes."""
    types = meta.get("types") or {}
    labels = meta.get("labels") or {}
    columns: dict[str, _Column] = {}
    for name in original.columns:
        name = str(name)
        fdef = (defs or {}).get(name)
        base = types.get(name) or (fdef.type if fdef is not None else None)
        dtype_kind = _kind_from_dtype(original[name])
        if name in labels or dtype_kind == "label":
            column = _Column(name, "label", base or "any", labels.get(name))
        else:
            column = _Column(name, base or dtype_kind)
        column.fdef = fdef
        if name in _READ_ONLY:
            column.read_only = f"{name} identifies the record"
        elif fdef is not None and not fdef.updatable:
            column.read_only = "the field definitions mark it as not updatable"
        elif column.kind in ("collection", "container"):
            column.read_only = (
                f"a {column.kind} cannot be written as a whole; edit its dotted fields"
            )
        columns[name] = column
    return columns


# ---- rows ------------------------------------------------------------------


def _is_new_key(key: Any) -> bool:
    if not isinstance(key, str):
        if is_missing(key):
            return True
        key = str(key)
    text = key.strip()
    return text == "" or text[:3].lower() == "new"


def _index_problems(
    frame: pd.DataFrame, which: str, *, allow_unnamed: bool
) -> list[str]:
    problems = []
    name = frame.index.name
    unnamed_ok = allow_unnamed and name is None and "uid" not in frame.columns
    if isinstance(frame.index, pd.RangeIndex) and len(frame):
        unnamed_ok = False  # positions, not uids: the frame lost its index
    if name != "uid" and not unnamed_ok:
        hint = (
            " (it has a 'uid' column: use .set_index('uid'))"
            if "uid" in frame.columns
            else ""
        )
        problems.append(
            f"{which}: the index must be the records' uids (index named 'uid'), "
            f"found index {name!r}{hint}"
        )
    if isinstance(frame.index, pd.MultiIndex):
        problems.append(f"{which}: a MultiIndex cannot hold uids")
        return problems
    labels = frame.index.tolist()
    keys = [
        key if isinstance(key, str) else str(key)
        for key in labels
        if not (which == "edited" and _is_new_key(key))
    ]
    if which == "original" and frame.index.hasnans:
        problems.append("original: some rows have no uid")
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            problems.append(f"{which}: uid {key!r} appears more than once")
        seen.add(key)
    return problems


def _natural(uid: str) -> tuple:
    return (0, int(uid), uid) if uid.isdigit() else (1, 0, uid)


# ---- the plan ---------------------------------------------------------------


@dataclass
class _Cell:
    """One changed cell and everything needed to send, check, report and undo it."""

    uid: str
    field: str
    column: _Column
    old: Any  # as shown in the frames
    new: Any
    old_canon: Any  # what the server should still hold (canonical)
    new_canon: Any  # what we want it to hold (canonical)
    new_wire: Any  # what goes into the payload
    op: str = "update"
    status: str = "planned"
    error: str | None = None
    server: Any = None  # the server's value when it differs (canonical)
    before: Any = None  # the server's value just before we wrote (wire form)

    def server_shown(self) -> Any:
        if self.column.kind == "label":
            return self.column.label_of(self.server)
        return self.server


@dataclass
class _NewRecord:
    key: str  # the edited row's index label
    values: dict[str, Any]  # field -> wire value
    shown: dict[str, Any]
    uid: str | None = None
    status: str = "planned"
    error: str | None = None


@dataclass
class _Plan:
    service: str
    cells: list[_Cell] = field(default_factory=list)
    adds: list[_NewRecord] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # rows left out, not deleted
    # uid -> the record's values, journalled with its delete (they cannot be undone)
    deleted_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (uid, status) of records an undone write deleted: undo cannot bring them back
    lost: list[tuple[str, str]] = field(default_factory=list)
    invalid: list[tuple] = field(default_factory=list)  # (uid, field, old, new) refused
    # A value of the wrong type in a column whose dtype differs from the original's.
    lost_types: bool = False
    language: str | None = None


def _meta(frame: pd.DataFrame) -> dict[str, Any]:
    meta = frame.attrs.get("otyspd") if isinstance(frame.attrs, dict) else None
    return meta if isinstance(meta, dict) else {}


def _maybe_changed(old: pd.Series, new: pd.Series) -> np.ndarray:
    """A fast filter: False where the two cells are certainly equal (same value or both missing)."""
    mixed = old.dtype != new.dtype and (
        pd.api.types.is_object_dtype(old.dtype)
        or pd.api.types.is_object_dtype(new.dtype)
    )
    categorical = isinstance(old.dtype, pd.CategoricalDtype) or isinstance(
        new.dtype, pd.CategoricalDtype
    )
    try:
        if mixed or categorical:
            # Python's own == on the objects: equal there is equal for write-back too.
            old, new = old.astype(object), new.astype(object)
        # A pandas deprecation raised while filtering must not fail a write (tests make
        # warnings errors); the filter only skips cells that are certainly equal.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            same = old.eq(new).fillna(False).to_numpy(dtype=bool)
    except (TypeError, ValueError):
        return np.ones(len(old), dtype=bool)
    both_missing = old.isna().to_numpy(dtype=bool) & new.isna().to_numpy(dtype=bool)
    return ~(same | both_missing)


def _same_cell(old: Any, new: Any, column: _Column) -> bool:
    """Type-aware equality of two cells of one column."""
    if _is_empty(old, column.kind) or _is_empty(new, column.kind):
        return _is_empty(old, column.kind) and _is_empty(new, column.kind)
    kind = "string" if column.kind == "label" else column.kind
    if column.kind == "label" and not (isinstance(old, str) and isinstance(new, str)):
        kind = "any"
    try:
        return canonical(old, kind, lenient=True) == canonical(new, kind)
    except _Bad:
        try:
            same = old == new
        except (TypeError, ValueError):
            return False
        # Only a plain truth value counts: a numpy scalar compared with a list gives
        # an array, and [True] would pass for True and the edit be dropped unseen.
        return isinstance(same, (bool, np.bool_)) and bool(same)


class _Labels:
    """Turns labels typed by the user into option ids, asking the server once per column."""

    def __init__(self, session: Any, service: str, language: str | None) -> None:
        self.session = session
        self.service = service
        self.language = language
        self.fetched: dict[str, dict[str, str] | None] = {}

    def server_labels(self, column: _Column) -> dict[str, str] | None:
        if column.name not in self.fetched:
            found = None
            lookup = getattr(self.session, "options", None)
            if lookup is not None:
                try:
                    # Labels in the language the frame was read in.
                    with _language(self.session, self.language):
                        found = lookup(self.service, [column.name]).get(column.name)
                except (ImportError, OtysError, AttributeError) as exc:
                    log.debug("options of %s unavailable: %s", column.name, exc)
            self.fetched[column.name] = (
                {str(k): str(v) for k, v in found.items()} if found else None
            )
        return self.fetched[column.name]

    def id_problem(self, column: _Column, wire: Any) -> str | None:
        """Why an option id typed as such (a frame read with labels=False) is refused, or None.

        Only for fields whose definitions say they have options; the list is
        asked once per column. Without a list to check against, the id is sent.
        """
        if wire is None or not getattr(column.fdef, "has_options", False):
            return None
        options = self.server_labels(column)
        if not options or str(wire) in options:
            return None
        ids = sorted(options, key=_natural)
        shown = ", ".join(f"{i} ({options[i]})" for i in ids[:12])
        more = f" and {len(ids) - 12} more" if len(ids) > 12 else ""
        return (
            f"{_show(wire)} is not an option id of this field "
            f"(valid ids: {shown}{more})"
        )

    def ids(self, column: _Column, label: Any) -> tuple[list[str], str | None]:
        """The ids a label maps to, or a problem text."""
        if not isinstance(label, str):
            return [], f"expected a label, got {type(label).__name__} {_show(label)}"
        ids = column.label_ids().get(_nfc(label), [])
        if not ids:
            extra = self.server_labels(column)
            if extra:
                column.labels = {**extra, **(column.labels or {})}
                ids = column.label_ids().get(_nfc(label), [])
        if not ids:
            known = sorted(column.label_ids())[:8]
            shown = ", ".join(repr(k) for k in known) if known else "none known"
            return (
                [],
                f"the label {label!r} is not an option of this field (options: {shown})",
            )
        if len(ids) > 1:
            return (
                ids,
                f"the label {label!r} belongs to several options ({', '.join(ids)})",
            )
        return ids, None


_EMPTY_PROBLEM = (
    "may not be empty (the field definitions say so; "
    "text of only spaces counts as empty)"
)


def _changed_cell(
    uid: str, column: _Column, old: Any, new: Any, labels: _Labels
) -> tuple[_Cell | None, str | None]:
    """Build the cell of one change, or say what is wrong with it."""
    if column.read_only:
        return None, f"cannot be updated: {column.read_only}"
    if getattr(column.fdef, "not_empty", False) and _is_blank(new):
        return None, _EMPTY_PROBLEM
    try:
        if column.kind == "label":
            old_canon: Any = None
            if not is_missing(old):
                old_ids, _ = labels.ids(column, str(old))
                old_canon = (
                    _AnyOf(old_ids) if len(old_ids) > 1 else (old_ids or [str(old)])[0]
                )
            if is_missing(new):
                return _Cell(
                    uid, column.name, column, old, new, old_canon, None, None
                ), None
            new_ids, problem = labels.ids(column, new)
            if problem:
                return None, problem
            wire = column.wire_id(new_ids[0])
            return _Cell(
                uid, column.name, column, old, new, old_canon, new_ids[0], wire
            ), None
        new_canon = canonical(new, column.kind)
        try:
            old_canon = canonical(old, column.kind, lenient=True)
        except _Bad:
            old_canon = old
    except _Bad as bad:
        return None, _TypeProblem(bad)
    if isinstance(new_canon, _Structure):
        return (
            None,
            "a list or dict cannot be written as a whole; edit its dotted fields",
        )
    problem = labels.id_problem(column, new_canon)
    if problem:
        return None, problem
    return _Cell(
        uid, column.name, column, old, new, old_canon, new_canon, new_canon
    ), None


def _record_wire(
    column: _Column, value: Any, labels: _Labels
) -> tuple[Any, str | None]:
    if column.kind == "label":
        ids, problem = labels.ids(column, value)
        return (column.wire_id(ids[0]) if ids and not problem else None), problem
    try:
        wire = canonical(value, column.kind)
    except _Bad as bad:
        return None, str(bad)
    if isinstance(wire, _Structure):
        return (
            None,
            "a list or dict cannot be written as a whole; edit its dotted fields",
        )
    return wire, labels.id_problem(column, wire)


def _frame_problems(original: pd.DataFrame, edited: pd.DataFrame) -> list[str]:
    """What keeps two frames from being compared at all: their index and columns."""
    problems = _index_problems(original, "original", allow_unnamed=False)
    problems += _index_problems(edited, "edited", allow_unnamed=True)
    if original.columns.duplicated().any() or edited.columns.duplicated().any():
        problems.append("a column name appears more than once")
    known = {str(c) for c in original.columns}
    problems += [
        f"edited: column {str(c)!r} is not in original (only columns that were read can be written)"
        for c in edited.columns
        if str(c) not in known
    ]
    return problems


def _compare_cells(
    original: pd.DataFrame,
    edited: pd.DataFrame,
    original_keys: list[str],
    edited_keys: list[str | None],
    columns: dict[str, _Column],
    labels: _Labels,
    plan: _Plan,
    problems: list[str],
) -> list[_Cell]:
    """The changed cells of the rows both frames hold, or a problem for each bad one."""
    known_rows = set(original_keys)
    matched = [k is not None and k in known_rows for k in edited_keys]
    right = edited.loc[matched].copy(deep=False)
    right.index = pd.Index([k for k, m in zip(edited_keys, matched, strict=True) if m])
    left = original.copy(deep=False)
    left.index = pd.Index(original_keys)
    left = left.loc[right.index]

    # A vectorised filter first, then the type-aware comparison on what is left.
    found = []
    shared = {str(e) for e in edited.columns}
    for name in [str(c) for c in original.columns if str(c) in shared]:
        old_col, new_col = left[name], right[name]
        for position in np.flatnonzero(_maybe_changed(old_col, new_col)):
            uid = right.index[position]
            old, new = old_col.iloc[position], new_col.iloc[position]
            if _same_cell(old, new, columns[name]):
                continue
            cell, problem = _changed_cell(uid, columns[name], old, new, labels)
            if problem:
                problems.append(f"uid {uid!r}, column {name!r}: {problem}")
                plan.invalid.append((uid, name, old, new))
                if isinstance(problem, _TypeProblem) and new_col.dtype != old_col.dtype:
                    plan.lost_types = True
            elif cell is not None:
                found.append(cell)

    # Order: by uid, then in the column order of the original frame.
    order = {str(c): i for i, c in enumerate(original.columns)}
    return sorted(found, key=lambda c: (_natural(c.uid), order[c.field]))


def _mark_excluded(plan: _Plan, excluded: dict[tuple[str, str | None], Any]) -> None:
    """Leave out the excluded cells, new records (or their fields) and deletes.

    Every entry must name a change of this plan (whatever its status): an entry
    that matches none is a typo, and the change it meant to hold back would be
    sent. Raises :class:`InvalidInput` naming each such entry, before anything
    is changed.
    """
    problems = _unmatched_exclusions(plan, excluded)
    if problems:
        raise InvalidInput(
            "nothing was sent: these exclude entries match no change of this write",
            problems,
        )
    for cell in plan.cells:
        if {(cell.uid, cell.field), (cell.uid, None)} & excluded.keys():
            cell.status, cell.error = "skipped", "excluded"
    for record in plan.adds:
        for name in [n for n in record.values if (record.key, n) in excluded]:
            del record.values[name], record.shown[name]
        if (record.key, None) in excluded or not record.values:
            record.status, record.error = "skipped", "excluded"
    plan.deletes = [u for u in plan.deletes if (u, None) not in excluded]


def _unmatched_exclusions(
    plan: _Plan, excluded: dict[tuple[str, str | None], Any]
) -> list[str]:
    """A problem text for each exclude entry that names no cell, record or delete of the plan."""
    changes: dict[str, set[str]] = {}  # uid -> the fields it changes
    for cell in plan.cells:
        changes.setdefault(cell.uid, set()).add(cell.field)
    for record in plan.adds:
        changes.setdefault(record.key, set()).update(record.values)
    for uid in [*plan.deletes, *plan.missing]:
        changes.setdefault(uid, set())

    problems = []
    for (uid, name), shown in excluded.items():
        if uid not in changes:
            hint = _close(uid, changes)
            problems.append(
                f"exclude entry {_show(shown)}: uid {uid!r} has no change here{hint}"
            )
        elif name is not None and name not in changes[uid]:
            fields = ", ".join(sorted(changes[uid])) or "none, only the whole record"
            problems.append(
                f"exclude entry {_show(shown)}: uid {uid!r} has no change in field "
                f"{name!r}{_close(name, changes[uid])} (its changed fields: {fields})"
            )
    return problems


def _close(word: str, known: Iterable[str]) -> str:
    """ " (did you mean 'X'?)" for a near miss in spelling, case or spaces, else ""."""
    known = list(known)
    folded = {k.strip().casefold(): k for k in known}
    match = folded.get(word.strip().casefold())
    if match is None:
        near = difflib.get_close_matches(word, known, n=1, cutoff=0.8)
        match = near[0] if near else None
    return f" (did you mean {match!r}?)" if match is not None else ""


def _plan(
    session: Any,
    service: str,
    original: pd.DataFrame,
    edited: pd.DataFrame,
    *,
    allow_add: bool = False,
    allow_delete: bool = False,
    exclude: Any = None,
    check_rows: bool = True,
) -> _Plan:
    """Compare the frames, validate every change, and return what to send (or raise)."""
    if not isinstance(original, pd.DataFrame) or not isinstance(edited, pd.DataFrame):
        raise InvalidInput("original and edited must both be pandas DataFrames")
    meta = _meta(original)
    service = short_service(service)
    read_service = meta.get("service")
    if read_service and short_service(read_service) != service:
        raise InvalidInput(f"original was read from {read_service}, not from {service}")
    problems = _frame_problems(original, edited)
    if problems:
        raise InvalidInput("cannot compare the frames", problems)

    defs = known_field_defs(session, service)
    columns = _describe_columns(original, meta, defs)
    labels = _Labels(session, service, meta.get("language"))
    plan = _Plan(service, language=meta.get("language"))

    # Rows: matched by uid; new rows are adds; rows left out are deletes or skipped.
    original_keys = [
        k if isinstance(k, str) else str(k) for k in original.index.tolist()
    ]
    edited_keys = [None if _is_new_key(k) else str(k) for k in edited.index.tolist()]
    known_rows = set(original_keys)
    problems += [
        f"edited: uid {k!r} is not in original (a new record needs an index that is empty "
        "or starts with 'new')"
        for k in sorted(
            {k for k in edited_keys if k is not None and k not in known_rows}
        )
    ]
    present = set(edited_keys)
    gone = sorted((k for k in original_keys if k not in present), key=_natural)
    plan.cells = _compare_cells(
        original, edited, original_keys, edited_keys, columns, labels, plan, problems
    )

    # New records: every filled cell of the row, sent with add.
    added = edited.iloc[[i for i, key in enumerate(edited_keys) if key is None]]
    new_rows = list(zip(added.index, added.itertuples(index=False), strict=True))
    if new_rows and not allow_add:
        names = ", ".join(repr(str(label)) for label, _ in new_rows[:10])
        problems.append(f"edited: new rows ({names}) need allow_add=True to be added")
    elif new_rows:
        names = [str(c) for c in edited.columns]
        plan.adds = _plan_adds(new_rows, names, columns, labels, problems, defs)

    if allow_delete:
        plan.deletes = gone
        plan.deleted_values = _row_values(original, original_keys, gone, columns)
    else:
        plan.missing = gone
    excluded = _exclusions(exclude)
    problems += _unmatched_exclusions(plan, excluded)
    if check_rows and problems:
        message = "nothing was sent; fix these first"
        if plan.lost_types:
            message += "\n" + _LOST_TYPES_HINT
        raise InvalidInput(message, problems)
    _mark_excluded(plan, excluded)
    return plan


def _row_values(
    original: pd.DataFrame,
    keys: list[str],
    uids: list[str],
    columns: dict[str, _Column],
) -> dict[str, dict[str, Any]]:
    """uid -> the read values of its row as an add would take them (dotted field -> value).

    The journal keeps them with each delete, so a deleted record can be added
    again by hand: undo cannot bring it back.
    """
    wanted = set(uids)
    values: dict[str, dict[str, Any]] = {}
    for position, key in enumerate(keys):
        if key not in wanted:
            continue
        row = original.iloc[position]
        values[key] = {
            name: wire
            for name, column in columns.items()
            if name not in _READ_ONLY
            and (wire := _read_value(column, row[name])) is not None
        }
    return values


def _read_value(column: _Column, value: Any) -> Any:
    """A read cell as it goes on the wire (an option id for a label), or None."""
    if is_missing(value):
        return None
    try:
        if column.kind == "label":
            ids = column.label_ids().get(_nfc(str(value)), [])
            wire = column.wire_id(ids[0]) if len(ids) == 1 else str(value)
        else:
            kind = column.kind if column.kind in _SCALAR_KINDS else "any"
            wire = canonical(value, kind, lenient=True)
            if isinstance(wire, _Structure):
                wire = wire.value
        # Only what a JSON Lines journal can hold.
        json.dumps(wire, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (_Bad, TypeError, ValueError):
        return None
    return wire


def _plan_adds(
    rows: list[tuple[Any, Any]],
    names: list[str],
    columns: dict[str, _Column],
    labels: _Labels,
    problems: list[str],
    defs: dict[str, Any] | None,
) -> list[_NewRecord]:
    obligatory = [
        f.name for f in (defs or {}).values() if f.obligatory and f.type != "container"
    ]
    records = []
    for number, (label, row) in enumerate(rows, start=1):
        key = (
            f"new#{number}"
            if is_missing(label) or str(label).strip() == ""
            else str(label)
        )
        values, shown = {}, {}
        for name, value in zip(names, row, strict=True):
            if _is_empty(value, columns[name].kind) or name in _READ_ONLY:
                continue
            if not getattr(columns[name].fdef, "insertable", True):
                problems.append(
                    f"new row {key!r}, column {name!r}: cannot be set on add"
                )
                continue
            if getattr(columns[name].fdef, "not_empty", False) and _is_blank(value):
                problems.append(f"new row {key!r}, column {name!r}: {_EMPTY_PROBLEM}")
                continue
            wire, problem = _record_wire(columns[name], value, labels)
            if problem:
                problems.append(f"new row {key!r}, column {name!r}: {problem}")
                continue
            if wire is None:  # empty text: nothing to set
                continue
            values[name], shown[name] = wire, value
        if not values:
            problems.append(f"new row {key!r} has no values to add")
        lacking = [name for name in obligatory if name not in values]
        if values and lacking:
            problems.append(
                f"new row {key!r} lacks obligatory fields: {', '.join(lacking)}"
            )
        records.append(_NewRecord(key, values, shown))
    return records


def _exclusions(exclude: Any) -> dict[tuple[str, str | None], Any]:
    """``[(uid, field), uid, ...]`` as (uid, field or None for the whole record) -> the entry.

    A report's frame (its ``uid`` and ``field`` columns) is taken too, and a
    single uid. Entries are matched exactly: no spaces are stripped, no case folded.
    """
    result: dict[tuple[str, str | None], Any] = {}
    if exclude is None:
        return result
    if isinstance(exclude, pd.DataFrame):
        if not {"uid", "field"} <= set(exclude.columns):
            raise InvalidInput(
                "exclude as a frame needs 'uid' and 'field' columns (a report's .frame)"
            )
        exclude = list(zip(exclude["uid"], exclude["field"], strict=True))
    elif isinstance(exclude, (str, int)):
        exclude = [exclude]
    for item in exclude:
        if isinstance(item, tuple) and len(item) == 2:
            uid, name = item
            key = (str(uid), None if name in (None, RECORD) else str(name))
            result[key] = item
        elif isinstance(item, (str, int)) and not isinstance(item, bool):
            result[(str(item), None)] = item
        else:
            raise InvalidInput(
                f"exclude takes (uid, field) pairs or uids, got {_show(item)}"
            )
    return result


# ---- public: diff -------------------------------------------------------------


def diff(
    session: Any, service: str, original: pd.DataFrame, edited: pd.DataFrame
) -> pd.DataFrame:
    """One row per changed cell: ``uid``, ``field``, ``old``, ``new``.

    Rows are sorted by uid, then by the column order of ``original``. Equality
    is type-aware (see the module docstring); cells that could not be written
    (a wrong type, an unknown label) are listed too, so the edit is visible.

    >>> session.diff("Candidate", df, edited)
    """
    plan = _plan(session, service, original, edited, allow_add=True, check_rows=False)
    order = {str(c): i for i, c in enumerate(original.columns)}
    rows = [(c.uid, c.field, c.old, c.new) for c in plan.cells] + plan.invalid
    rows.sort(key=lambda row: (_natural(row[0]), order[row[1]]))
    frame = pd.DataFrame(rows, columns=["uid", "field", "old", "new"], dtype=object)
    return frame.astype({"uid": "string", "field": "string"})


# ---- running a write ------------------------------------------------------------


@dataclass
class _Run:
    """Options of one write, kept so that a plan can be applied or a write undone."""

    force: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    progress: bool | None = None
    journal: Journal | None = None
    entries: list[dict] = field(default_factory=list)  # outcomes, for the report

    def log(self, entries: list[dict]) -> None:
        """Keep the outcome entries and append every entry to the journal file."""
        self.entries += [e for e in entries if e["status"] != "sending"]
        if self.journal is not None:
            self.journal.write(entries)


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _language(session: Any, language: str | None):
    """Run inside the content language the frame was read in, so multilingual fields land there."""
    switch = getattr(session, "language", None)
    current = getattr(session, "language_code", None)
    if language and switch is not None and language != current:
        return switch(language)
    return contextlib.nullcontext()


def _read_current(
    session: Any,
    service: str,
    uids: list[str],
    fields_by_uid: dict[str, list[str]],
    size: int,
) -> dict[str, Any]:
    """Read the named fields of each record again: uid -> record dict, or the OwsError."""
    current: dict[str, Any] = {}
    for batch in _batches(uids, size):
        calls = [
            (f"{service}.getDetail", [uid, _what(fields_by_uid[uid])]) for uid in batch
        ]
        results = session.multi(calls, idempotent=True, chunk=len(calls))
        for uid, result in zip(batch, results, strict=True):
            current[uid] = result.data if result.ok else result.error
    return current


def _server_canon(cell: _Cell, record: Any) -> Any:
    raw = _pluck(record, cell.field)
    kind = cell.column.kind if cell.column.kind in (*_SCALAR_KINDS, "label") else "any"
    try:
        return canonical(raw, kind, lenient=True)
    except _Bad:
        return raw


def _check_conflicts(session: Any, plan: _Plan, run: _Run) -> None:
    """Compare the server's current values with the read ones; mark unchanged and conflict cells."""
    todo = [c for c in plan.cells if c.status == "planned"]
    fields_by_uid: dict[str, list[str]] = {}
    for cell in todo:
        fields_by_uid.setdefault(cell.uid, []).append(cell.field)
    current = _read_current(
        session, plan.service, list(fields_by_uid), fields_by_uid, run.batch_size
    )
    for cell in todo:
        record = current[cell.uid]
        if isinstance(record, NotFound):
            cell.status, cell.error = (
                "conflict",
                "the record no longer exists on the server",
            )
            continue
        if isinstance(record, Exception):
            cell.status, cell.error = (
                "failed",
                f"could not read the current value: {record}",
            )
            continue
        now = _server_canon(cell, record)
        raw = _pluck(record, cell.field)
        # Undo restores this: the server's own text exactly (an empty text too),
        # else its canonical form.
        exact = cell.column.kind in ("label", "string", "text") and (
            now is not None or raw == ""
        )
        cell.before = raw if exact else now
        if now == cell.new_canon:
            cell.status = "unchanged"
        elif cell.old_canon != now:
            cell.server = now
            if run.force:
                cell.error = f"forced over the server's value {cell.server_shown()!r}"
            else:
                cell.status = "conflict"
                cell.error = "changed on the server since it was read"


def _payloads(cells: list[_Cell]) -> dict[str, dict[str, Any]]:
    """uid -> nested payload of the cells still to send, checked to be strict JSON."""
    flat: dict[str, dict[str, Any]] = {}
    for cell in cells:
        if cell.status == "planned":
            flat.setdefault(cell.uid, {})[cell.field] = cell.new_wire
    payloads = {uid: nest_changes(values) for uid, values in flat.items()}
    for uid, payload in payloads.items():
        try:
            json.dumps(payload, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"uid {uid!r}: the payload is not valid JSON ({exc})"
            ) from None
    return payloads


def _send_updates(
    session: Any,
    plan: _Plan,
    run: _Run,
    payloads: dict[str, dict],
    bar: Any,
    run_id: str,
) -> None:
    """Send the updates batch by batch; a batch without an answer is read back to learn what landed."""
    cells_by_uid: dict[str, list[_Cell]] = {}
    for cell in plan.cells:
        if cell.status == "planned":
            cells_by_uid.setdefault(cell.uid, []).append(cell)
    uids = list(payloads)
    stopped = False
    for batch in _batches(uids, run.batch_size):
        batch_cells = [c for uid in batch for c in cells_by_uid[uid]]
        if stopped:
            for cell in batch_cells:
                cell.status, cell.error = (
                    "skipped",
                    "not attempted: the connection failed earlier",
                )
            continue
        _journal_cells(run, plan.service, batch_cells, run_id, "sending")
        calls = [(f"{plan.service}.update", [uid, payloads[uid]]) for uid in batch]
        try:
            results = session.multi(calls, idempotent=False, chunk=len(calls))
        except (OtysError, OSError) as exc:  # no usable answer: outcome unknown
            log.warning("an update batch got no answer (%s); reading it back", exc)
            stopped = not _verify_batch(
                session, plan.service, batch_cells, run, str(exc)
            )
        else:
            for uid, result in zip(batch, results, strict=True):
                for cell in cells_by_uid[uid]:
                    if result.ok:
                        cell.status = "written"
                    else:
                        cell.status, cell.error = "failed", _error_text(result.error)
        _journal_cells(run, plan.service, batch_cells, run_id)
        bar.update(len(batch))


def _error_text(error: Any) -> str:
    return str(getattr(error, "ows_message", None) or error or "refused by the server")


def _verify_batch(
    session: Any, service: str, cells: list[_Cell], run: _Run, why: str
) -> bool:
    """After a batch got no answer, mark each cell written or failed from what the server holds."""
    fields_by_uid: dict[str, list[str]] = {}
    for cell in cells:
        fields_by_uid.setdefault(cell.uid, []).append(cell.field)
    try:
        current = _read_current(
            session, service, list(fields_by_uid), fields_by_uid, run.batch_size
        )
    except (OtysError, OSError) as exc:
        for cell in cells:
            cell.status = "unknown"
            cell.error = (
                f"no answer ({why}) and the check read failed ({exc}); not retried"
            )
        return False
    for cell in cells:
        record = current.get(cell.uid)
        if isinstance(record, Exception):
            cell.status, cell.error = (
                "unknown",
                f"no answer ({why}); check read failed: {record}",
            )
        elif _server_canon(cell, record) == cell.new_canon:
            cell.status = "written"
            cell.error = (
                f"confirmed by reading it back: the request got no answer ({why})"
            )
        else:
            cell.status = "failed"
            cell.error = f"not applied: the request got no answer ({why})"
    return True


def _send_adds(session: Any, plan: _Plan, run: _Run, bar: Any, run_id: str) -> None:
    """Add new records. An add is never repeated: without an answer its outcome is unknown."""
    todo = [r for r in plan.adds if r.status == "planned"]
    for batch in _batches(todo, run.batch_size):
        calls = [(f"{plan.service}.add", [nest_changes(r.values)]) for r in batch]
        try:
            results = session.multi(calls, idempotent=False, chunk=len(calls))
        except (OtysError, OSError) as exc:  # no usable answer: outcome unknown
            for record in batch:
                record.status = "unknown"
                record.error = f"no answer ({exc}); it may have been added: look before adding again"
        else:
            for record, result in zip(batch, results, strict=True):
                if result.ok:
                    record.status, record.uid = "added", str(result.data)
                else:
                    record.status, record.error = "failed", _error_text(result.error)
        for record in batch:
            _journal_record(
                run, plan.service, record.uid or record.key, "add", record, run_id
            )
        bar.update(len(batch))


def _send_deletes(
    session: Any, plan: _Plan, run: _Run, bar: Any, run_id: str
) -> dict[str, tuple]:
    outcome: dict[str, tuple[str, str | None]] = {}
    for batch in _batches(plan.deletes, run.batch_size):
        calls = [(f"{plan.service}.delete", [uid]) for uid in batch]
        try:
            results = session.multi(calls, idempotent=False, chunk=len(calls))
            for uid, result in zip(batch, results, strict=True):
                ok = result.ok or isinstance(result.error, NotFound)
                outcome[uid] = (
                    ("deleted", None) if ok else ("failed", _error_text(result.error))
                )
        except (OtysError, OSError) as exc:  # no usable answer: outcome unknown
            outcome.update(_verify_deletes(session, plan.service, batch, str(exc)))
        for uid in batch:
            status, error = outcome[uid]
            before = plan.deleted_values.get(uid)
            entry = journal_entry(
                run_id, plan.service, "delete", uid, RECORD, "record", before, None
            )
            run.log([{**entry, "status": status, "error": error}])
        bar.update(len(batch))
    return outcome


def _verify_deletes(
    session: Any, service: str, uids: list[str], why: str
) -> dict[str, tuple]:
    outcome = {}
    try:
        results = session.multi(
            [(f"{service}.getDetail", [u, {"uid": 1}]) for u in uids], idempotent=True
        )
    except (OtysError, OSError) as exc:
        return {
            u: ("unknown", f"no answer ({why}); check read failed ({exc})")
            for u in uids
        }
    for uid, result in zip(uids, results, strict=True):
        if isinstance(result.error, NotFound):
            outcome[uid] = ("deleted", None)
        elif result.ok:
            outcome[uid] = ("failed", f"not deleted: the request got no answer ({why})")
        else:
            outcome[uid] = (
                "unknown",
                f"no answer ({why}); check read failed: {result.error}",
            )
    return outcome


def _journal_cells(
    run: _Run, service: str, cells: list[_Cell], run_id: str, status: str | None = None
) -> None:
    entries = []
    for cell in cells:
        entry = journal_entry(
            run_id,
            service,
            cell.op,
            cell.uid,
            cell.field,
            cell.column.kind,
            cell.before,
            cell.new_wire,
        )
        entries.append(
            {
                **entry,
                "status": status or cell.status,
                "error": None if status else cell.error,
            }
        )
    run.log(entries)


def _journal_record(
    run: _Run, service: str, uid: str, op: str, record: _NewRecord, run_id: str
) -> None:
    entry = journal_entry(
        run_id, service, op, uid, RECORD, "record", None, record.values
    )
    run.log([{**entry, "status": record.status, "error": record.error}])


def _execute(session: Any, plan: _Plan, run: _Run, *, dry_run: bool) -> WriteReport:
    """Check, then (unless a dry run) write the plan; return the report."""
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:12]
    with _language(session, plan.language):
        _check_conflicts(session, plan, run)
        checked = time.perf_counter()
        payloads = _payloads(plan.cells)
        deleted: dict[str, tuple] = {}
        if not dry_run:
            total = (
                len(payloads)
                + sum(r.status == "planned" for r in plan.adds)
                + len(plan.deletes)
            )
            with progress_bar(
                run.progress,
                total=total,
                desc=f"Writing {plan.service}",
                unit="records",
            ) as bar:
                _send_updates(session, plan, run, payloads, bar, run_id)
                _send_adds(session, plan, run, bar, run_id)
                deleted = _send_deletes(session, plan, run, bar, run_id)
    timings = {"check": checked - started, "total": time.perf_counter() - started}
    log.info(
        "%s %s: %d cells, %d new and %d deleted records in %.1f s",
        "planned" if dry_run else "wrote",
        plan.service,
        len(plan.cells),
        len(plan.adds),
        len(plan.deletes),
        timings["total"],
    )
    # New records are listed under their row label in edited ("new1"), before updates.
    for record in plan.adds:
        if record.status != "skipped":
            payloads[record.key] = nest_changes(record.values)
    return WriteReport(
        session=session,
        plan=plan,
        run=run,
        payloads=payloads,
        deleted=deleted,
        dry_run=dry_run,
        timings=timings,
        run_id=run_id,
    )


# ---- public: write_back ------------------------------------------------------------


def write_back(
    session: Any,
    service: str,
    original: pd.DataFrame,
    edited: pd.DataFrame,
    *,
    dry_run: bool = False,
    force: bool = False,
    allow_add: bool = False,
    allow_delete: bool = False,
    journal: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
    exclude: Any = None,
    **unknown: Any,
) -> WriteReport:
    """Send the cells changed between ``original`` and ``edited``; return a :class:`WriteReport`.

    Args:
        service: ``"Candidate"``, ``"CandidateService"`` or the full name.
        original: the frame as read (indexed by uid); never modified.
        edited: the same frame after editing.
        dry_run: read the server's current values (for the conflict check)
            but write nothing; the report is a plan that :meth:`WriteReport.apply` sends.
        force: write cells that changed on the server since they were read.
        allow_add: send rows without a uid (or with one starting with "new") as new records.
        allow_delete: delete the records whose rows are missing from ``edited``.
        journal: a path; every write is appended to it as JSON Lines, per batch.
        batch_size: records per MultiService request.
        progress: draw a progress bar (default: only when someone is watching).
        exclude: ``(uid, field)`` pairs, or uids, to leave out. Each must name
            a change of this write (matched exactly), else nothing is sent.

    Raises:
        InvalidInput: before anything is sent, listing every problem: a bad
            frame or value, an exclude entry that matches no change, an
            unknown option.

    >>> report = session.write_back("Candidate", df, edited)
    >>> report.counts
    {'written': 3}
    """
    refuse_unknown_options("write_back", unknown, _WRITE_OPTIONS)
    _check_batch_size(batch_size)
    plan = _plan(
        session,
        service,
        original,
        edited,
        allow_add=allow_add,
        allow_delete=allow_delete,
        exclude=exclude,
    )
    return _run_plan(
        session,
        plan,
        force=force,
        batch_size=batch_size,
        progress=progress,
        journal=journal,
        dry_run=dry_run,
    )


def _check_batch_size(batch_size: Any) -> None:
    if (
        not isinstance(batch_size, int)
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise InvalidInput(
            f"batch_size must be a positive whole number, got {batch_size!r}"
        )


def _run_plan(
    session: Any,
    plan: _Plan,
    *,
    force: bool,
    batch_size: int,
    progress: bool | None,
    journal: Any,
    dry_run: bool = False,
) -> WriteReport:
    """Check and send a plan (a new write, an applied dry run or an undo)."""
    _check_batch_size(batch_size)
    run = _Run(force=force, batch_size=batch_size, progress=progress)
    if journal is not None and not dry_run:
        run.journal = Journal(journal)
    return _execute(session, plan, run, dry_run=dry_run)


def _without(plan: _Plan, exclude: Any) -> _Plan:
    """A fresh copy of a dry run's plan, minus the excluded cells, records and deletes."""
    fresh = _Plan(plan.service, language=plan.language, missing=list(plan.missing))
    for cell in plan.cells:
        copy = replace(cell, status="planned", error=None, server=None, before=None)
        if cell.status == "skipped":
            copy.status, copy.error = "skipped", cell.error
        fresh.cells.append(copy)
    for record in plan.adds:
        copy = _NewRecord(record.key, dict(record.values), dict(record.shown))
        if record.status == "skipped":
            copy.status, copy.error = "skipped", record.error
        fresh.adds.append(copy)
    fresh.deletes = list(plan.deletes)
    fresh.deleted_values = dict(plan.deleted_values)
    _mark_excluded(fresh, _exclusions(exclude))
    return fresh


def _undo_plan(entries: list[dict]) -> _Plan:
    """The plan that restores journalled cells: their "after" is now the old value.

    Records the write added are deleted again (their values stay in the undo's
    journal). Records it deleted cannot be brought back: they are listed in
    ``plan.lost``, for the report to show as skipped.
    """
    if not entries:
        raise InvalidInput("there is nothing to undo: the journal holds no writes")
    services = {e["service"] for e in entries}
    if len(services) != 1:
        shown = ", ".join(sorted(services))
        raise InvalidInput(f"the journal mixes services ({shown}); pass run=")
    plan = _Plan(services.pop())
    for entry in entries:
        if entry["op"] == "update" and entry["status"] in (
            "written",
            "sending",
            "unknown",
        ):
            kind = entry.get("kind") or "any"
            after, before = entry["after"], entry["before"]
            plan.cells.append(
                _Cell(
                    entry["uid"],
                    entry["field"],
                    _Column(entry["field"], kind),
                    old=after,
                    new=before,
                    old_canon=canonical(after, kind, lenient=True),
                    new_canon=canonical(before, kind, lenient=True),
                    new_wire=before,
                )
            )
        elif entry["op"] == "add" and entry["status"] == "added":
            plan.deletes.append(entry["uid"])
            plan.deleted_values[entry["uid"]] = entry.get("after") or {}
        elif entry["op"] == "delete" and entry["status"] in ("deleted", "unknown"):
            plan.lost.append((entry["uid"], entry["status"]))
    plan.cells.sort(key=lambda c: (_natural(c.uid), c.field))
    return plan
