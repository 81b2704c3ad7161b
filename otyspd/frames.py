"""Records to typed DataFrames and back: flattening, dtypes, the PHP ``[]`` quirk.

:func:`records_to_frame` builds each column straight from the records by its
dotted path (no row-by-row pass through pandas) and gives it a dtype that loses
nothing:

- strings stay strings exactly (``"0012"`` keeps its zeros; a JSON string is
  never turned into a number unless a declared type says so);
- integers become nullable ``Int64`` built without passing through float, so
  ``9007199254740993`` stays exact;
- booleans become ``boolean`` and are read from ``true``, ``1``, ``"1"`` and
  ``"true"`` (and their opposites) when the field is declared boolean;
- ``YYYY-MM-DD`` dates become naive midnight timestamps, never via UTC;
  ``YYYY-MM-DD HH:MM:SS`` datetimes are server time, Europe/Amsterdam. A
  declared date may also be ``DD-MM-YYYY`` (Dutch order, never month first).
  Zero dates (``0000-00-00``) are missing values, listed apart in the attrs;
- lists and maps (collections) stay one column of Python objects, and an empty
  ``[]`` sent where an object was expected counts as an empty object.

A column that comes in incompatible JSON shapes (a scalar in one record, an
object in another) is normalised to the declared shape where one is known
and otherwise raises :class:`SchemaDriftError` naming the uids.

``df.attrs["otyspd"]`` describes the read (service, language, types, labels,
absent cells and zero dates), so that write-back can be exact.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidInput, OtysError, ProtocolError
from .options import apply_labels

__all__ = [
    "SERVER_TZ",
    "SchemaDriftError",
    "cell_to_json",
    "concat_frames",
    "empty_attrs",
    "explode",
    "flatten_record",
    "is_missing",
    "known_field_defs",
    "nest_changes",
    "records_to_frame",
    "unflatten_record",
]

log = logging.getLogger(__name__)

SERVER_TZ = "Europe/Amsterdam"


class SchemaDriftError(ProtocolError):
    """One field arrived in incompatible JSON shapes; ``uids`` names the records."""

    def __init__(self, message: str, *, column: str, uids: list[str]) -> None:
        self.column = column
        self.uids = list(uids)
        super().__init__(message)


class _Absent:
    """Marks a key the server did not send (kept apart from an explicit null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()
_CLASH = _Absent()  # a child path under a scalar parent
_PLAIN = {str, int, float, bool, type(None), _Absent}

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_NL_RE = re.compile(r"^\d{2}-\d{2}-\d{4}$")
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?$")
_INSTANT_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$"
)
_INT_RE = re.compile(r"[+-]?\d+")
_ZERO_DATES = {"0000-00-00", "0000-00-00 00:00:00", "00-00-0000"}
_TRUE = {"1", "true", "yes", "y", "t", "on"}
_FALSE = {"0", "false", "no", "n", "f", "off", ""}
_SCALAR_TYPES = {"string", "text", "integer", "float", "boolean", "date", "datetime"}


# ---- shared checks --------------------------------------------------------------


def is_missing(value: Any) -> bool:
    """True for None, NaN, NaT and ``pd.NA``; a list, dict or string is never missing."""
    if value is None:
        return True
    if not pd.api.types.is_scalar(value) or isinstance(value, str):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def known_field_defs(session: Any, service: str) -> dict[str, Any] | None:
    """The service's field definitions, or None when the session cannot tell them.

    Reading and writing both work without them (types then come from the
    values and the read's notes), so a failure to get them is not an error.
    """
    lookup = getattr(session, "field_defs", None)
    if lookup is None:
        return None
    try:
        return lookup(service)
    except (ImportError, NotImplementedError, OtysError) as exc:
        log.debug("field definitions of %s unavailable: %s", service, exc)
        return None


# ---- flattening ---------------------------------------------------------------


def flatten_record(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested objects to dotted keys; lists and empty objects stay leaves.

    >>> flatten_record({"uid": "1", "Person": {"firstName": "Ada"}})
    {'uid': '1', 'Person.firstName': 'Ada'}
    """
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if not isinstance(key, str) or not key or "." in key:
            raise InvalidInput(
                f"cannot flatten the key {key!r}: keys must be non-empty and dot-free"
            )
        path = prefix + key
        if isinstance(value, Mapping) and value:
            flat.update(flatten_record(value, path + "."))
        else:
            flat[path] = value
    return flat


def nest_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Nest dotted paths again for the server: ``{"Person.firstName": "x"}`` ->
    ``{"Person": {"firstName": "x"}}``.

    A path set beside its own parent (``Person`` and ``Person.firstName``) is
    contradictory and raises :class:`InvalidInput`.
    """
    for path in changes:
        if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
            raise InvalidInput(f"cannot nest the path {path!r}")
    problems = []
    for path in changes:
        parts = path.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in changes:
                problems.append(f"{path!r} is set beside its parent {parent!r}")
    if problems:
        raise InvalidInput("the changes contradict each other", problems)
    nested: dict[str, Any] = {}
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


unflatten_record = nest_changes


# ---- building columns -----------------------------------------------------------


def _extract(records: list, parts: list[str]) -> tuple[list, list[int], list[int]]:
    """Values at ``parts`` in each record; indexes of absent cells and of shape clashes.

    One level at a time over all records, so the common case (dicts all the
    way down) stays in fast comprehensions.
    """
    level = [r.get(parts[0], ABSENT) for r in records]
    for part in parts[1:]:
        level = [
            v.get(part, ABSENT) if type(v) is dict else _descend(v, part) for v in level
        ]
    clash = [i for i, v in enumerate(level) if v is _CLASH] if _CLASH in level else []
    if clash:
        level = [ABSENT if v is _CLASH else v for v in level]
    absent = [i for i, v in enumerate(level) if v is ABSENT] if ABSENT in level else []
    return level, absent, clash


def _descend(node: Any, part: str) -> Any:
    """One step down from a node that is not a plain object."""
    if (
        node is None
        or node is ABSENT
        or node is _CLASH
        or (type(node) is list and not node)
    ):
        # the parent is null, absent or the PHP empty object []: the child is not there
        return node if node is _CLASH else ABSENT
    if isinstance(node, list) and all(isinstance(x, dict) for x in node):
        # a child path inside a collection: the children of every item
        return [x.get(part) for x in node]
    return _CLASH


def infer_type(values: list) -> str:
    """The field type for values of unknown declaration, chosen without damaging any."""
    types = set(map(type, values))
    if types <= {int, type(None), _Absent}:
        return "integer" if int in types else "string"
    simple = {str: "str", int: "int", float: "float", bool: "bool", dict: "container"}
    kinds: set[str] = {
        simple.get(t, "other") for t in types - {type(None), _Absent, list}
    }
    if list in types:
        # an empty [] is the PHP encoding of an empty object or an empty value
        kinds |= {"container" if v else "empty" for v in values if type(v) is list}
    if kinds <= {"container", "empty"} and kinds:
        return "collection"
    # an empty [] among scalars is the PHP encoding of an empty value
    kinds.discard("empty")
    if not kinds:
        return "string"
    if "container" in kinds:
        return "mixed"
    if kinds == {"bool"}:
        return "boolean"
    if kinds == {"int"}:
        return "integer"
    if kinds <= {"int", "float"}:
        return "float"
    if kinds == {"bool", "int"} and all(v in (0, 1) for v in values if type(v) is int):
        return "boolean"
    if kinds == {"str"}:
        strings = [
            v for v in values if type(v) is str and v not in _ZERO_DATES and v != ""
        ]
        if not strings:
            # only zero dates or empty strings: the zero date's spelling says which
            zeros = {v for v in values if type(v) is str and v in _ZERO_DATES}
            if zeros:
                return "datetime" if "0000-00-00 00:00:00" in zeros else "date"
        if strings and all(_DATE_RE.match(s) for s in strings):
            return "date"
        if strings and all(
            _DATETIME_RE.match(s) or _INSTANT_RE.match(s) for s in strings
        ):
            return "datetime"
    return "string"


def _drift(
    column: str, values: list, uids: list, bad: Iterable[int], what: str
) -> SchemaDriftError:
    bad = list(bad)
    shown = ", ".join(str(uids[i]) for i in bad[:10])
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    example = values[bad[0]] if bad else None
    return SchemaDriftError(
        f"schema drift in {column!r}: {what} (uids {shown}{more}; e.g. {example!r:.80}). "
        "Declare the field's type (types={...}) to normalise it, or ask for its sub-fields",
        column=column,
        uids=[uids[i] for i in bad],
    )


def _object_to_scalar(value: dict, has_options: bool) -> Any:
    """The scalar an ``{id, label}``-style object stands for, or ABSENT if none."""
    keys = (
        ("id", "uid", "value", "label", "name")
        if has_options
        else ("value", "label", "name", "id", "uid")
    )
    for key in keys:
        if key in value:
            return value[key]
    return ABSENT


def _normalise_shapes(
    column: str, values: list, uids: list, ftype: str, has_options: bool
) -> list:
    """Bring every value to the declared shape of ``ftype``, or raise SchemaDriftError."""
    if ftype in _SCALAR_TYPES:
        if set(map(type, values)) <= _PLAIN:
            return values
        bad, out = [], list(values)
        for i, v in enumerate(values):
            if type(v) is list and not v:
                out[i] = None  # the PHP empty [] for an empty value
            elif isinstance(v, dict):
                scalar = _object_to_scalar(v, has_options)
                if scalar is ABSENT or isinstance(scalar, (dict, list)):
                    bad.append(i)
                out[i] = scalar
            elif isinstance(v, list):
                bad.append(i)
        if bad:
            raise _drift(
                column,
                values,
                uids,
                bad,
                f"declared {ftype} but objects or lists arrived",
            )
        return out
    if ftype == "collection":
        out = []
        for v in values:
            # one item sent bare where a list of items was expected
            is_item = isinstance(v, dict) and v and not _keyed_by_id(v)
            out.append([v] if is_item else v)
        return out
    if ftype == "container":
        return [{} if (type(v) is list and not v) else v for v in values]
    return values


def _keyed_by_id(value: dict) -> bool:
    """A map keyed by ids (``{"12": ...}``) rather than one item's fields."""
    try:
        return all(map(str.isdigit, value))
    except TypeError:
        return all(str(k).isdigit() for k in value)


def _to_string(values: list) -> Any:
    plain = [None if v is ABSENT else v for v in values]
    if set(map(type, plain)) <= {str, type(None)}:
        return pd.array(plain, dtype="string")
    out = []
    for v in plain:
        if v is None or type(v) is str:
            out.append(v)
        elif isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, float) and v.is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return pd.array(out, dtype="string")


def _to_integer(column: str, values: list, uids: list) -> Any:
    if set(map(type, values)) <= {int, type(None), _Absent}:
        # plain JSON integers: straight into int64 with a mask, never via float
        mask = np.array([v is None or v is ABSENT for v in values], dtype=bool)
        try:
            data = np.array(
                [0 if m else v for v, m in zip(values, mask, strict=True)],
                dtype=np.int64,
            )
        except OverflowError:
            pass
        else:
            return pd.arrays.IntegerArray(data, mask)
    mask = np.zeros(len(values), dtype=bool)
    data, bad = [], []
    for i, v in enumerate(values):
        if v is None or v is ABSENT or v == "":
            mask[i] = True
            data.append(0)
        elif type(v) is int:
            data.append(v)
        elif (isinstance(v, (bool, float)) and float(v).is_integer()) or (
            isinstance(v, str) and _INT_RE.fullmatch(v.strip())
        ):
            data.append(int(v))
        else:
            bad.append(i)
            mask[i] = True
            data.append(0)
    if bad:
        raise _drift(
            column, values, uids, bad, "declared integer but non-integer values arrived"
        )
    try:
        arr = np.array(data, dtype=np.int64)
    except OverflowError:
        # beyond 64 bits: keep the exact Python integers rather than round them
        return pd.array(
            [None if m else d for d, m in zip(data, mask, strict=True)], dtype=object
        )
    return pd.arrays.IntegerArray(arr, mask)


def _to_float(column: str, values: list, uids: list) -> Any:
    out, bad = [], []
    for i, v in enumerate(values):
        if v is None or v is ABSENT or v == "":
            out.append(None)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(float(v))
        else:
            try:
                out.append(
                    float(str(v).replace(",", ".")) if isinstance(v, str) else float(v)
                )
            except ValueError:
                bad.append(i)
                out.append(None)
    if bad:
        raise _drift(
            column, values, uids, bad, "declared float but non-numeric values arrived"
        )
    return pd.array(out, dtype="Float64")


def _to_boolean(column: str, values: list, uids: list) -> Any:
    out, bad = [], []
    for i, v in enumerate(values):
        if v is None or v is ABSENT:
            out.append(None)
        elif v is True or v is False:
            out.append(v)
        elif isinstance(v, (int, float)) and v in (0, 1):
            out.append(bool(v))
        elif isinstance(v, str) and v.strip().lower() in _TRUE:
            out.append(True)
        elif isinstance(v, str) and v.strip().lower() in _FALSE:
            out.append(False if v.strip() else None)
        else:
            bad.append(i)
            out.append(None)
    if bad:
        raise _drift(
            column, values, uids, bad, "declared boolean but other values arrived"
        )
    return pd.array(out, dtype="boolean")


def _date_strings(column: str, values: list, uids: list, zero: list[int]) -> pd.Series:
    """The date strings as an object Series: missing and zero dates as None."""
    plain = [None if v is ABSENT or v == "" else v for v in values]
    if not set(map(type, plain)) <= {str, type(None)}:
        bad = [
            i for i, v in enumerate(plain) if v is not None and not isinstance(v, str)
        ]
        raise _drift(
            column, values, uids, bad, "a date or datetime as a non-string value"
        )
    series = pd.Series(plain, dtype=object)
    zeros = series.isin(_ZERO_DATES).to_numpy()
    if zeros.any():
        zero.extend(np.flatnonzero(zeros).tolist())
        series[zeros] = None
    return series


def _to_date(column: str, values: list, uids: list, zero: list[int]) -> pd.Series:
    strings = _date_strings(column, values, uids, zero)
    filled = strings.dropna()
    if len(filled) and all(_DATE_NL_RE.match(x) for x in filled):
        fmt = "%d-%m-%Y"
    else:
        fmt = "%Y-%m-%d"
        if len(filled) and filled.str.len().max() > 10:
            # a datetime sent for a date field: keep its calendar date as written
            strings = strings.str.strip().str[:10]
    parsed = pd.to_datetime(strings, format=fmt, errors="coerce")
    _check_parsed(column, strings, parsed, uids)
    return parsed.astype("datetime64[ns]")


def _to_datetime(column: str, values: list, uids: list, zero: list[int]) -> pd.Series:
    series = _date_strings(column, values, uids, zero)
    # server-local wall times, the usual form, parsed with one explicit format
    parsed = pd.to_datetime(series, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    other = (parsed.isna() & series.notna()).to_numpy()
    parsed = parsed.dt.tz_localize(
        SERVER_TZ,
        ambiguous=np.ones(len(parsed), dtype=bool),
        nonexistent="shift_forward",
    ).astype(f"datetime64[ns, {SERVER_TZ}]")
    if other.any():
        parsed[other] = _other_datetimes(series[other])
    _check_parsed(column, series, parsed, uids)
    return parsed


def _other_datetimes(series: pd.Series) -> pd.Series:
    """Datetimes in the rarer forms: with an offset or Z, a T, or without seconds."""
    instants = series.str.match(_INSTANT_RE.pattern, na=False)
    out = pd.Series(pd.NaT, index=series.index, dtype=f"datetime64[ns, {SERVER_TZ}]")
    if instants.any():
        # an instant with an offset: converted to server time, never cut to a UTC date
        exact = pd.to_datetime(
            series[instants], format="ISO8601", utc=True, errors="coerce"
        )
        out[instants] = exact.dt.tz_convert(SERVER_TZ).astype(out.dtype)
    local = series[~instants].str.strip().str.replace("T", " ", regex=False)
    local = local.where(local.str.len() != 10, local + " 00:00:00")
    local = local.where(local.str.len() != 16, local + ":00")
    wall = pd.to_datetime(local, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    out[~instants] = wall.dt.tz_localize(
        SERVER_TZ, ambiguous=np.ones(len(wall), dtype=bool), nonexistent="shift_forward"
    ).astype(out.dtype)
    return out


def _check_parsed(
    column: str, strings: pd.Series, parsed: pd.Series, uids: list
) -> None:
    failed = (parsed.isna() & strings.notna()).to_numpy()
    if failed.any():
        raise _drift(
            column,
            list(strings),
            uids,
            np.flatnonzero(failed),
            "values that are not valid dates",
        )


def _to_objects(values: list) -> Any:
    arr = np.empty(len(values), dtype=object)
    arr[:] = [None if v is ABSENT else v for v in values]
    return arr


def convert_column(
    column: str,
    values: list,
    uids: list,
    ftype: str,
    *,
    has_options: bool = False,
    zero: list[int] | None = None,
) -> Any:
    """Turn one column's raw JSON values into a typed array of ``ftype``."""
    zero = [] if zero is None else zero
    if ftype == "mixed":
        containers = [
            i for i, v in enumerate(values) if isinstance(v, (list, dict)) and v
        ]
        scalars = [
            i
            for i, v in enumerate(values)
            if v is not None and v is not ABSENT and not isinstance(v, (list, dict))
        ]
        few = containers if len(containers) <= len(scalars) else scalars
        raise _drift(
            column,
            values,
            uids,
            few,
            "scalars in some records, objects or lists in others",
        )
    values = _normalise_shapes(column, values, uids, ftype, has_options)
    if ftype in ("string", "text"):
        return _to_string(values)
    if ftype == "integer":
        return _to_integer(column, values, uids)
    if ftype == "float":
        return _to_float(column, values, uids)
    if ftype == "boolean":
        return _to_boolean(column, values, uids)
    if ftype == "date":
        return _to_date(column, values, uids, zero).array
    if ftype == "datetime":
        return _to_datetime(column, values, uids, zero).array
    return _to_objects(values)


def empty_attrs(service: str | None = None, language: str | None = None) -> dict:
    """A fresh ``attrs["otyspd"]`` layout."""
    return {
        "service": service,
        "language": language,
        "types": {},
        "labels": {},
        "absent": {},
        "zero_dates": {},
    }


def records_to_frame(
    records: list[Mapping[str, Any]],
    paths: list[str],
    *,
    types: Mapping[str, str] | None = None,
    field_defs: Mapping[str, Any] | None = None,
    option_labels: Mapping[str, Mapping[str, str]] | None = None,
    service: str | None = None,
    language: str | None = None,
) -> pd.DataFrame:
    """Build the typed frame of ``records``: index ``uid``, columns ``paths`` (minus uid).

    Args:
        records: the records as the server sent them (nested dicts).
        paths: the dotted paths asked for; ``uid`` is the index, not a column.
        types: declared field types by path (win over ``field_defs``).
        field_defs: the service's field definitions, if known.
        option_labels: ``{path: {id: label}}`` for the columns to show as labels.
        service, language: recorded in ``attrs["otyspd"]``.

    >>> df = records_to_frame([{"uid": "7", "statusId": 3}], ["uid", "statusId"])
    >>> df.loc["7", "statusId"]
    np.int64(3)
    """
    types = dict(types or {})
    option_labels = option_labels or {}
    attrs = empty_attrs(service, language)

    # the index: uids as exact strings
    uid_values, _, _ = _extract(records, ["uid"])
    missing = [
        i for i, u in enumerate(uid_values) if u is None or u is ABSENT or u == ""
    ]
    if missing:
        raise ProtocolError(
            f"{len(missing)} record(s) arrived without a uid (positions {missing[:10]})"
        )
    uids = [u if type(u) is str else str(u) for u in uid_values]
    index = pd.Index(pd.array(uids, dtype="string"), name="uid")

    columns: dict[str, Any] = {}
    for path in paths:
        if path == "uid":
            continue
        values, absent, clash = _extract(records, path.split("."))
        if clash:
            raise _drift(
                path,
                [records[i] for i in range(len(records))],
                uids,
                clash,
                "the parent of this path is a scalar, not an object",
            )
        fdef = field_defs.get(path) if field_defs else None
        ftype = (
            types.get(path)
            or (fdef.type if fdef is not None else None)
            or infer_type(values)
        )
        has_options = bool(getattr(fdef, "has_options", False)) or path in option_labels
        zero: list[int] = []
        if path in option_labels and ftype in _SCALAR_TYPES:
            values = _normalise_shapes(path, values, uids, ftype, True)
            values = [None if v is ABSENT else v for v in values]
            raw_type = infer_type(values)
            columns[path], used = apply_labels(values, option_labels[path], column=path)
            attrs["labels"][path] = used
            attrs["types"][path] = (
                ftype if ftype not in ("date", "datetime") else raw_type
            )
        else:
            columns[path] = convert_column(
                path, values, uids, ftype, has_options=has_options, zero=zero
            )
            attrs["types"][path] = ftype
        if absent:
            attrs["absent"][path] = [uids[i] for i in absent]
        if zero:
            attrs["zero_dates"][path] = [uids[i] for i in zero]

    frame = pd.DataFrame(
        columns, index=index, columns=[p for p in paths if p != "uid"], copy=False
    )
    frame.attrs["otyspd"] = attrs
    return frame


# ---- combining and reshaping ------------------------------------------------------


def concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack page frames into one, merging their attrs and categorical categories."""
    frames = [f for f in frames if f is not None]
    if not frames:
        raise ValueError("concat_frames needs at least one frame")
    attrs = empty_attrs(
        frames[0].attrs.get("otyspd", {}).get("service"),
        frames[0].attrs.get("otyspd", {}).get("language"),
    )
    for f in frames:
        a = f.attrs.get("otyspd", {})
        for col, ftype in a.get("types", {}).items():
            # a page where the column was all missing only guessed its type
            if col not in attrs["types"] or (col in f.columns and f[col].notna().any()):
                attrs["types"][col] = ftype
        for col, mapping in a.get("labels", {}).items():
            attrs["labels"].setdefault(col, {}).update(mapping)
        for key in ("absent", "zero_dates"):
            for col, uids in a.get(key, {}).items():
                attrs[key].setdefault(col, []).extend(uids)
    if len(frames) == 1:
        out = frames[0].copy(deep=False)
        out.attrs = {"otyspd": attrs}
        return out
    frames = [f.copy(deep=False) for f in frames]
    for col in frames[0].columns:
        _align_column(frames, col, attrs)
    for f in frames:
        f.attrs = {}
    out = pd.concat(frames, copy=False) if _concat_takes_copy() else pd.concat(frames)
    out.attrs = {"otyspd": attrs}
    return out


def _align_column(frames: list[pd.DataFrame], col: str, attrs: dict) -> None:
    """Give ``col`` one dtype across page frames (in place), or raise SchemaDriftError."""
    dtypes = [f[col].dtype for f in frames]
    if isinstance(dtypes[0], pd.CategoricalDtype):
        seen: dict = {}
        for f in frames:
            if isinstance(f[col].dtype, pd.CategoricalDtype):
                seen.update(dict.fromkeys(f[col].cat.categories))
        union = pd.CategoricalDtype(list(seen))
        for f in frames:
            f[col] = f[col].astype(union)
        return
    if all(d == dtypes[0] for d in dtypes):
        return
    # a page where the column was all missing could not tell its type: take the others'
    filled = [f for f in frames if f[col].notna().any()]
    kinds = {str(f[col].dtype) for f in filled}
    if len(kinds) > 1 and kinds <= {"Int64", "Float64"}:
        target: Any = pd.Float64Dtype()
        attrs["types"][col] = "float"
    elif len(kinds) > 1:
        raise SchemaDriftError(
            f"schema drift in {col!r}: pages gave the types {sorted(kinds)}; "
            "declare the field's type (types={...}) to read it as one",
            column=col,
            uids=[],
        )
    else:
        target = filled[0][col].dtype if filled else dtypes[0]
    for f in frames:
        if f[col].dtype != target:
            if f[col].notna().any():
                f[col] = f[col].astype(target)
            else:
                f[col] = pd.array([None] * len(f), dtype=target)


def _concat_takes_copy() -> bool:
    return int(pd.__version__.split(".")[0]) < 3


def explode(df: pd.DataFrame, column: str, *, keep_empty: bool = True) -> pd.DataFrame:
    """One row per item of a collection column, keyed by the parent ``uid``.

    Parents whose collection is empty or missing keep one row with missing
    child values (a left join), so no parent silently disappears. The ``key``
    column holds the list position or the map key of each item.

    >>> kids = explode(df, "EducationHistory")           # doctest: +SKIP
    """
    if column not in df.columns:
        raise InvalidInput(
            f"explode: {column!r} is not a column; columns are {list(df.columns)}"
        )
    parent_uids, keys, items = [], [], []
    for uid, value in df[column].items():
        pairs = _items_of(column, uid, value)
        if not pairs and keep_empty:
            parent_uids.append(uid)
            keys.append(None)
            items.append(ABSENT)
        for key, item in pairs:
            parent_uids.append(uid)
            keys.append(key)
            items.append(item)

    # child columns: every dotted leaf seen, in order of first appearance
    flat_items = [flatten_record(it) if isinstance(it, dict) else it for it in items]
    paths: dict[str, None] = {}
    scalar_items = any(
        not isinstance(it, dict) and it is not ABSENT for it in flat_items
    )
    for it in flat_items:
        if isinstance(it, dict):
            paths.update(dict.fromkeys(it))
    if scalar_items and paths:
        bad = [
            str(parent_uids[i])
            for i, it in enumerate(flat_items)
            if not isinstance(it, dict) and it is not ABSENT
        ]
        raise SchemaDriftError(
            f"explode: {column!r} mixes objects and bare values (uids {', '.join(bad[:10])})",
            column=column,
            uids=bad,
        )
    index = pd.Index(
        pd.array([str(u) for u in parent_uids], dtype="string"), name="uid"
    )
    out = {
        "key": pd.array([None if k is None else str(k) for k in keys], dtype="string")
    }
    str_uids = [str(u) for u in parent_uids]
    if scalar_items:
        vals = [None if it is ABSENT else it for it in flat_items]
        out["value"] = convert_column("value", vals, str_uids, infer_type(vals))
    for path in paths:
        vals = [
            it.get(path, ABSENT) if isinstance(it, dict) else ABSENT
            for it in flat_items
        ]
        out[path] = convert_column(path, vals, str_uids, infer_type(vals))
    frame = pd.DataFrame(out, index=index)
    frame.attrs["otyspd"] = {
        "parent": column,
        "parents": int(df.shape[0]),
        "empty_parents": [
            str(u) for u, k in zip(parent_uids, keys, strict=True) if k is None
        ],
    }
    return frame


def _items_of(column: str, uid: Any, value: Any) -> list[tuple[Any, Any]]:
    if value is None or value is ABSENT or value is pd.NA:
        return []
    if isinstance(value, float) and value != value:
        return []
    if isinstance(value, list):
        return list(enumerate(value))
    if isinstance(value, dict):
        if value and all(
            isinstance(v, dict) or str(k).isdigit() for k, v in value.items()
        ):
            return list(value.items())
        return [(0, value)] if value else []
    raise InvalidInput(
        f"explode: {column!r} of uid {uid} is {value!r:.60}, not a list or map"
    )


# ---- cells back to JSON --------------------------------------------------------


def cell_to_json(value: Any, ftype: str | None = None) -> Any:
    """A frame cell as the JSON value the server expects (None for missing).

    Dates go out as ``YYYY-MM-DD``, datetimes as ``YYYY-MM-DD HH:MM:SS`` in
    server time, numpy scalars as plain Python; ``NaN``/``NaT``/``NA`` as null.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        if ftype == "date" or (
            value.tzinfo is None and value == value.normalize() and ftype != "datetime"
        ):
            return value.strftime("%Y-%m-%d")
        if value.tzinfo is not None:
            value = value.tz_convert(SERVER_TZ)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.datetime):
        return cell_to_json(pd.Timestamp(value), ftype)
    if isinstance(value, dt.date):
        return value.isoformat()
    if ftype == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value
