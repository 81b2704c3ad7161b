"""Conditions, sort orders and field selections, compiled to what OWS expects.

A list request names three things besides paging: which fields to return
(``what``), which records (``condition``) and in which order (``sort``).
This module turns the Python spellings of these into the OWS JSON shapes and
checks them before anything is sent:

>>> cond = (F("statusId") == 3) & F("Person.emailPrimary").like("%@example.com")
>>> compile_condition(cond)["type"]
'AND'
>>> what_from_paths(["uid", "Person.firstName"])
{'uid': 1, 'Person': {'firstName': 1}}
>>> compile_sort(["-entryDateTime"])
{'entryDateTime': 'DESC', 'uid': 'ASC'}

Condition values are made JSON-safe: a date becomes ``"YYYY-MM-DD"``; a
datetime becomes an ISO instant in UTC with a ``Z`` (``2025-07-31T22:00:00.000Z``),
the form OTYS's own web UI sends. A naive datetime is taken as Europe/Amsterdam
wall time, the server's clock, before it is converted.
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from .errors import InvalidInput

__all__ = [
    "OPERATORS",
    "Condition",
    "F",
    "check_paths",
    "compile_condition",
    "compile_sort",
    "json_value",
    "normalize_what",
    "parse_where",
    "paths_from_what",
    "what_from_paths",
]

SERVER_TZ = ZoneInfo("Europe/Amsterdam")

#: The comparison operators of an OWS ``COND`` item, and the one each negates to.
OPERATORS = {
    "EQ": "NE",
    "NE": "EQ",
    "LT": "GE",
    "GE": "LT",
    "GT": "LE",
    "LE": "GT",
    "LIKE": "NLIKE",
    "NLIKE": "LIKE",
    "T": "F",
    "F": "T",
}
_GROUPS = {"AND": "OR", "OR": "AND"}
_NO_PARAM = {"T", "F"}


# ---- values -----------------------------------------------------------------


def json_value(value: Any, *, where: str = "condition") -> Any:
    """Return ``value`` as a JSON-safe scalar the server understands.

    Dates become ``YYYY-MM-DD``; datetimes an ISO UTC instant ending in ``Z``
    (naive ones are read as Europe/Amsterdam time); numpy and pandas scalars
    become plain Python. Anything else raises :class:`InvalidInput`.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if hasattr(value, "item") and type(value).__module__.startswith("numpy"):
        value = value.item()
        return json_value(value, where=where)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidInput(
                f"{where}: {value!r} is not a number the server can compare with"
            )
        return float(value)
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        if value != value:  # NaT
            raise InvalidInput(
                f"{where}: a missing timestamp (NaT) cannot be compared with"
            )
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=SERVER_TZ)
        try:
            utc = aware.astimezone(dt.timezone.utc)
        except (OverflowError, ValueError):
            raise InvalidInput(
                f"{where}: {value!r} cannot be sent: it lies outside the years "
                "a UTC instant can hold"
            ) from None
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    raise InvalidInput(
        f"{where}: a value of type {type(value).__name__} ({value!r}) cannot be sent; "
        "use a string, number, boolean, date or datetime"
    )


def _check_field(field: Any) -> str:
    if not isinstance(field, str) or not field.strip():
        raise InvalidInput(f"a field path must be a non-empty string, got {field!r}")
    parts = field.strip().split(".")
    if any(not p for p in parts):
        raise InvalidInput(f"{field!r} is not a field path (empty part between dots)")
    return field.strip()


# ---- conditions -------------------------------------------------------------


class Condition:
    """A node of a condition tree: a comparison or an AND/OR group.

    Combine with ``&``, ``|`` and ``~``. ``~`` pushes the negation down to the
    leaves, so the tree sent to the server only uses the operators OWS has.
    """

    def __init__(
        self,
        kind: str,
        *,
        field: str | None = None,
        param: Any = None,
        items: tuple[Condition, ...] = (),
    ) -> None:
        self.kind = kind
        self.field = field
        self.param = param
        self.items = items

    # combining
    def __and__(self, other: Any) -> Condition:
        return _group("AND", self, other)

    def __or__(self, other: Any) -> Condition:
        return _group("OR", self, other)

    def __invert__(self) -> Condition:
        if self.kind in _GROUPS:
            return Condition(
                _GROUPS[self.kind], items=tuple(~item for item in self.items)
            )
        if self.kind == "EQ" and isinstance(self.param, list):
            # not in [a, b] == NE a AND NE b
            return Condition(
                "AND",
                items=tuple(
                    Condition("NE", field=self.field, param=p) for p in self.param
                ),
            )
        return Condition(OPERATORS[self.kind], field=self.field, param=self.param)

    def __bool__(self) -> bool:
        raise InvalidInput(
            "a condition has no truth value; combine conditions with & | ~, "
            "not with 'and', 'or', 'not' or chained comparisons like 1 < F('x') < 3"
        )

    def to_ows(self) -> dict:
        """The OWS condition dict of this tree."""
        if self.kind in _GROUPS:
            return {"type": self.kind, "items": [item.to_ows() for item in self.items]}
        node = {"type": "COND", "field": self.field, "op": self.kind}
        if self.kind not in _NO_PARAM:
            node["param"] = self.param
        return node

    def fields(self) -> list[str]:
        """Every field path this tree compares."""
        if self.kind in _GROUPS:
            return [f for item in self.items for f in item.fields()]
        return [self.field]

    def __repr__(self) -> str:
        if self.kind in _GROUPS:
            joiner = " & " if self.kind == "AND" else " | "
            return "(" + joiner.join(repr(i) for i in self.items) + ")"
        if self.kind in _NO_PARAM:
            return (
                f"F({self.field!r}).{'is_true' if self.kind == 'T' else 'is_false'}()"
            )
        return f"F({self.field!r}) {self.kind} {self.param!r}"


def _group(kind: str, left: Any, right: Any) -> Condition:
    for side in (left, right):
        if not isinstance(side, Condition):
            raise InvalidInput(
                f"cannot combine a condition with {side!r}; both sides of & and | "
                "must be conditions such as F('statusId') == 3"
            )
    items: list[Condition] = []
    for side in (left, right):
        # flatten (a & b) & c into one AND group
        items.extend(side.items if side.kind == kind else (side,))
    return Condition(kind, items=tuple(items))


class F:
    """A field to compare, by its dotted path: ``F("Person.lastName") == "Jansen"``."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = _check_field(path)

    def _cmp(self, op: str, value: Any) -> Condition:
        if isinstance(value, (F, Condition)):
            raise InvalidInput(
                f"F({self.path!r}) can only be compared with a value, not with {value!r}; "
                "OWS conditions compare a field with a constant"
            )
        if isinstance(value, (list, tuple, set, dict)):
            raise InvalidInput(
                f"F({self.path!r}) {op}: use .isin([...]) to compare with several values"
            )
        return Condition(
            op, field=self.path, param=json_value(value, where=f"F({self.path!r})")
        )

    def __eq__(self, value: Any) -> Condition:  # type: ignore[override]
        return self._cmp("EQ", value)

    def __ne__(self, value: Any) -> Condition:  # type: ignore[override]
        return self._cmp("NE", value)

    def __lt__(self, value: Any) -> Condition:
        return self._cmp("LT", value)

    def __le__(self, value: Any) -> Condition:
        return self._cmp("LE", value)

    def __gt__(self, value: Any) -> Condition:
        return self._cmp("GT", value)

    def __ge__(self, value: Any) -> Condition:
        return self._cmp("GE", value)

    __hash__ = None  # type: ignore[assignment]

    def like(self, pattern: str) -> Condition:
        """Match a pattern; ``%`` stands for any text: ``.like("%@example.com")``."""
        return self._pattern("LIKE", pattern)

    def not_like(self, pattern: str) -> Condition:
        """The records whose value does not match ``pattern``."""
        return self._pattern("NLIKE", pattern)

    def _pattern(self, op: str, pattern: Any) -> Condition:
        if not isinstance(pattern, str):
            raise InvalidInput(
                f"F({self.path!r}).{op.lower()}: a pattern must be a string, got {pattern!r}"
            )
        return Condition(op, field=self.path, param=pattern)

    def is_true(self) -> Condition:
        """The records where this boolean field is true."""
        return Condition("T", field=self.path)

    def is_false(self) -> Condition:
        """The records where this boolean field is false."""
        return Condition("F", field=self.path)

    def isin(self, values: Iterable[Any]) -> Condition:
        """The records whose value is one of ``values`` (sent as EQ with a list)."""
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(
            values, Iterable
        ):
            raise InvalidInput(
                f"F({self.path!r}).isin needs a list of values, got {values!r}"
            )
        params = [json_value(v, where=f"F({self.path!r}).isin") for v in values]
        if not params:
            raise InvalidInput(
                f"F({self.path!r}).isin([]) matches nothing; leave the condition out "
                "or pass at least one value"
            )
        return Condition("EQ", field=self.path, param=params)

    def __repr__(self) -> str:
        return f"F({self.path!r})"


def _from_ows(node: Any, where: str) -> Condition:
    """Check a raw OWS condition dict and turn it into a :class:`Condition`."""
    if not isinstance(node, Mapping):
        raise InvalidInput(f"{where}: a condition item must be a dict, got {node!r}")
    kind = str(node.get("type", "")).upper()
    if kind in _GROUPS:
        items = node.get("items")
        if not isinstance(items, list) or not items:
            raise InvalidInput(
                f"{where}: an {kind} group needs a non-empty 'items' list"
            )
        return Condition(
            kind,
            items=tuple(
                _from_ows(item, f"{where}.items[{i}]") for i, item in enumerate(items)
            ),
        )
    if kind != "COND":
        raise InvalidInput(
            f"{where}: unknown condition type {node.get('type')!r}; use COND, AND or OR"
        )
    field = node.get("field")
    if not isinstance(field, str) or not field.strip():
        raise InvalidInput(
            f"{where}: 'field' must be a non-empty string, got {field!r}"
        )
    op = str(node.get("op", "")).upper()
    if op not in OPERATORS:
        raise InvalidInput(
            f"{where}: unknown operator {node.get('op')!r}; use one of {', '.join(OPERATORS)}"
        )
    if op in _NO_PARAM:
        return Condition(op, field=_check_field(field))
    if "param" not in node:
        raise InvalidInput(f"{where}: operator {op} needs a 'param'")
    param = node["param"]
    if isinstance(param, list):
        if op not in ("EQ", "NE") or not param:
            raise InvalidInput(
                f"{where}: a list param needs EQ or NE and at least one value"
            )
        param = [json_value(p, where=where) for p in param]
    else:
        param = json_value(param, where=where)
    if op in ("LIKE", "NLIKE") and not isinstance(param, str):
        raise InvalidInput(f"{where}: a {op} pattern must be a string, got {param!r}")
    return Condition(op, field=_check_field(field), param=param)


def as_condition(condition: Any) -> Condition | None:
    """Accept a :class:`Condition`, a raw OWS dict, a ``{field: value}`` dict, or None."""
    if condition is None:
        return None
    if isinstance(condition, Condition):
        return condition
    if isinstance(condition, F):
        raise InvalidInput(
            f"{condition!r} is a field, not a condition; compare it, e.g. {condition!r} == 3"
        )
    if isinstance(condition, Mapping):
        if "type" in condition and str(condition["type"]).upper() in (
            "COND",
            "AND",
            "OR",
        ):
            return _from_ows(condition, "condition")
        if not condition:
            return None
        # {"statusId": 3, "userId": [1, 2]}: an AND of equalities
        parts = []
        for field, value in condition.items():
            f = F(_check_field(field))
            is_many = isinstance(value, (list, tuple, set))
            parts.append(f.isin(value) if is_many else f == value)
        return parts[0] if len(parts) == 1 else Condition("AND", items=tuple(parts))
    raise InvalidInput(
        f"a condition must be built with F(...), be an OWS condition dict or a "
        f"{{field: value}} dict, got {type(condition).__name__}: {condition!r}"
    )


def compile_condition(
    condition: Any, field_defs: Mapping[str, Any] | None = None
) -> dict | None:
    """Return the OWS condition dict for ``condition`` (None for no condition).

    With ``field_defs`` known, fields that do not exist or cannot be filtered on
    are rejected before any request.
    """
    tree = as_condition(condition)
    if tree is None:
        return None
    if field_defs:
        check_paths(tree.fields(), field_defs, need="filterable", where="condition")
    return tree.to_ows()


# ---- sort ---------------------------------------------------------------------


def compile_sort(
    sort: Any,
    field_defs: Mapping[str, Any] | None = None,
    *,
    unique: str | None = "uid",
) -> dict:
    """Return the OWS sort dict; ``unique`` (uid) is appended ascending for stable pages.

    ``sort`` is None, a field name, a list like ``["-entryDateTime", "uid"]``
    (a leading ``-`` means descending), or an OWS dict ``{"field": "ASC"|"DESC"}``.
    """
    order: dict[str, str] = {}
    if sort is None:
        pass
    elif isinstance(sort, Mapping):
        for field, direction in sort.items():
            d = str(direction).upper() if isinstance(direction, str) else None
            if d not in ("ASC", "DESC"):
                raise InvalidInput(
                    f"sort: direction of {field!r} must be 'ASC' or 'DESC', got {direction!r}"
                )
            order[_check_field(field)] = d
    else:
        items = [sort] if isinstance(sort, str) else sort
        if not isinstance(items, Iterable):
            raise InvalidInput(
                f"sort must be a list of field names or an OWS dict, got {sort!r}"
            )
        for item in items:
            if not isinstance(item, str):
                raise InvalidInput(
                    f"sort: each item must be a field name string, got {item!r}"
                )
            name = item.strip()
            desc = name.startswith("-")
            field = _check_field(name.lstrip("-+"))
            if field in order:
                raise InvalidInput(f"sort: {field!r} is given twice")
            order[field] = "DESC" if desc else "ASC"
    if field_defs:
        check_paths(list(order), field_defs, need="sortable", where="sort")
    if unique and unique not in order:
        order[unique] = "ASC"
    return order


# ---- what -------------------------------------------------------------------


def paths_from_what(what: Any) -> list[str]:
    """Dotted paths from an OWS nested ``what`` dict (fields set to 0/False are left out)."""
    paths: list[str] = []

    def walk(node: Mapping, prefix: str) -> None:
        for key, value in node.items():
            if not isinstance(key, str) or not key:
                raise InvalidInput(
                    f"what: a field name must be a non-empty string, got {key!r}"
                )
            path = f"{prefix}{key}"
            if isinstance(value, Mapping):
                if not value:
                    raise InvalidInput(
                        f"what: {path!r} is an empty dict; name its fields or use 1"
                    )
                walk(value, path + ".")
            elif value in (1, True):
                paths.append(path)
            elif value in (0, False, None):
                continue
            else:
                raise InvalidInput(
                    f"what: {path!r} must be 1, 0 or a dict of fields, got {value!r}"
                )

    walk(what, "")
    return paths


def what_from_paths(paths: Iterable[str]) -> dict:
    """The OWS nested ``what`` dict for dotted paths: ``Person.firstName`` -> nested 1."""
    what: dict = {}
    for path in paths:
        node = what
        *parents, leaf = path.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InvalidInput(
                    f"what: {path!r} is asked beside its parent {part!r}"
                )
            node = child
        if isinstance(node.get(leaf), dict):
            raise InvalidInput(f"what: {path!r} is asked beside its own children")
        node[leaf] = 1
    return what


def normalize_what(what: Any, field_defs: Mapping[str, Any] | None = None) -> list[str]:
    """The list of column paths for ``what``, checked; ``uid`` is always first.

    Rejects duplicates, a parent asked beside its children (``Person`` and
    ``Person.firstName``), and, when ``field_defs`` are known, unknown or
    unlistable fields.
    """
    if isinstance(what, Mapping):
        paths = paths_from_what(what)
    elif isinstance(what, str):
        paths = [p.strip() for p in what.split(",") if p.strip()]
    elif isinstance(what, Iterable):
        paths = list(what)
    else:
        raise InvalidInput(
            f"what must be a list of dotted paths or an OWS what dict, got {what!r}"
        )
    problems = []
    clean: list[str] = []
    for p in paths:
        try:
            p = _check_field(p)
        except InvalidInput as exc:
            problems.append(str(exc))
            continue
        if p in clean:
            problems.append(f"{p!r} is asked twice")
        clean.append(p)
    if not clean:
        problems.append("no fields asked; name at least one field besides uid")
    known = {*clean, "uid"}  # uid is always read, so it is never a parent
    for p in clean:
        parts = p.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in known:
                problems.append(
                    f"{p!r} is asked beside its parent {parent!r}; ask one or the other"
                )
    if problems:
        raise InvalidInput(
            "the fields asked (what) are not valid",
            sorted(set(problems), key=problems.index),
        )
    if field_defs:
        check_paths(clean, field_defs, need="listable", where="what")
    if "uid" in clean:
        clean.remove("uid")
    return ["uid", *clean]


def check_paths(
    paths: Iterable[str], field_defs: Mapping[str, Any], *, need: str, where: str
) -> None:
    """Reject paths unknown to ``field_defs`` or lacking the ``need`` attribute."""
    problems = []
    for path in paths:
        fdef = field_defs.get(path)
        if fdef is None:
            close = [n for n in field_defs if n.lower() == path.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{path!r} is not a field of this service{hint}")
        elif not getattr(fdef, need, True):
            problems.append(f"{path!r} is not {need}")
    if problems:
        raise InvalidInput(
            f"{where}: fields rejected by the service's field definitions", problems
        )


# ---- the command line's --where -------------------------------------------------

_WHERE_OPS = ("!~", ">=", "<=", "!=", "=", ">", "<", "~")


def parse_where(text: str) -> Condition | None:
    """Parse the command line's ``--where`` into a condition.

    Clauses are joined by commas (AND). Each is ``field OP value`` with OP one
    of ``=  !=  >  >=  <  <=`` or ``~`` (LIKE, ``%`` any text) and ``!~``
    (NOT LIKE). ``field=a|b`` means one of several values; ``field=true`` and
    ``field=false`` test a boolean. A value of digits without a leading zero
    is sent as a number; anything else, or a value in quotes, as text.

    >>> parse_where("statusId=3,Person.emailPrimary~%@example.com").to_ows()["type"]
    'AND'
    """
    if not isinstance(text, str) or not text.strip():
        return None
    parts: list[Condition] = []
    for clause in _split_clauses(text):
        op = _first_operator(clause)
        if op is None:
            raise InvalidInput(
                f"--where: {clause!r} has no operator; write e.g. statusId=3, "
                "entryDateTime>=2024-01-01 or Person.emailPrimary~%@example.com"
            )
        field, _, raw = clause.partition(op)
        f = F(field.strip())
        raw = raw.strip()
        if op in ("~", "!~"):
            pattern = _unquote(raw)
            parts.append(f.like(pattern) if op == "~" else f.not_like(pattern))
        elif op == "=" and raw.lower() in ("true", "false"):
            parts.append(f.is_true() if raw.lower() == "true" else f.is_false())
        elif op in ("=", "!=") and "|" in raw and raw[:1] not in "'\"":
            found = f.isin([_where_value(v) for v in raw.split("|")])
            parts.append(found if op == "=" else ~found)
        else:
            value = _where_value(raw)
            parts.append(
                {
                    "=": f == value,
                    "!=": f != value,
                    ">": f > value,
                    ">=": f >= value,
                    "<": f < value,
                    "<=": f <= value,
                }[op]
            )
    return parts[0] if len(parts) == 1 else Condition("AND", items=tuple(parts))


def _first_operator(clause: str) -> str | None:
    """The operator that comes first in ``clause`` (the longest one at that place).

    The value may hold operator characters too (``note~%a=b%``): the field
    name ends where the first operator starts.
    """
    found = [(clause.find(o), -len(o), o) for o in _WHERE_OPS if o in clause]
    return min(found)[2] if found else None


def _split_clauses(text: str) -> list[str]:
    clauses, current, quote = [], [], None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            clauses.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if quote:
        raise InvalidInput(f"--where: an unclosed quote in {text!r}")
    clauses.append("".join(current).strip())
    empty = [i for i, c in enumerate(clauses) if not c]
    if empty:
        raise InvalidInput(f"--where: an empty clause in {text!r}")
    return clauses


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def _where_value(raw: str) -> Any:
    raw = raw.strip()
    text = _unquote(raw)
    if text != raw:  # quoted: always text
        return text
    digits = raw.lstrip("-")
    if digits.isdigit() and (digits == "0" or not digits.startswith("0")):
        return int(raw)
    return raw
