"""SQLite storage of the sandbox: one table per service, one column per field.

A scalar field is a column named by its dotted path; a multilingual field has
one column per content language (``title#nl``, ``title#en``, ...); a
collection is JSON text. Filterable and sortable columns are indexed, and
conditions compile to parameterised SQL, so that a 200-row page of 100,000
candidates is served in milliseconds.

Every method here raises :class:`Fault` for input the server refuses; the
server turns it into an OWS error object.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..schema import FieldDef
from . import values
from .schema import (
    OPTIONS,
    SERVICES,
    SUPPORTED_LANGUAGES,
    WIRE,
    ZERO_DATES,
    ServiceSchema,
    label_in,
)

#: Rows per list request without and with ``excludeLimitCheck``.
PAGE_CAP = 200
PAGE_CAP_EXCLUDED = 1000

#: Collections whose stored value is a list of option ids, shown as {id: label}.
_OPTION_COLLECTIONS = {"matchCriteria_1", "matchCriteria_2", "publishedWebsites"}
#: Collections written as lists of items, with the items' allowed keys.
_ITEM_COLLECTIONS = {
    "Person.PhoneNumbers": ("type", "phoneNumber"),
    "EmploymentHistory": ("employer", "function", "startDate", "endDate"),
}
_PHONE_TYPES = ("primary", "mobile", "work", "other", "fax")
_COMPUTED = {
    ("CandidateService", "age"),
    ("ProcedureService", "ProcedureStatus1.status"),
}
#: String columns worth an index (ids, names, e-mail); other strings are scanned.
_INDEXED_STRINGS = {
    "personalNr",
    "Person.lastName",
    "Person.firstName",
    "Person.emailPrimary",
    "Person.AddressPrimary.postcode",
    "Person.AddressPrimary.city",
    "relation",
    "customerNr",
    "username",
    "name",
    "candidateUid",
    "vacancyUid",
    "relationId",
    "title",
    "referenceNr",
}
_OPS = {"EQ", "NE", "GE", "GT", "LE", "LT", "T", "F", "LIKE", "NLIKE"}
_COMPARE = {"EQ": "=", "NE": "<>", "GE": ">=", "GT": ">", "LE": "<=", "LT": "<"}

# Error codes the sandbox uses (the real codes are unknown; access errors use 0 as in the manual).
CODE_ACCESS = 0
CODE_NOT_FOUND = 404
CODE_INVALID = -32602
CODE_NO_METHOD = -32601


class Fault(Exception):
    """An OWS error: ``message`` and ``code`` go into the JSON-RPC error object."""

    def __init__(self, message: str, code: int = CODE_INVALID) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def simulated(text: str) -> str:
    """Mark an error text the sandbox invented (the real wording is unknown)."""
    return f"{text} (simulated message)"


def invalid(text: str) -> Fault:
    return Fault(simulated(text), CODE_INVALID)


def not_found(service: str, uid: Any) -> Fault:
    """The error for a uid that names no record of a service."""
    return Fault(
        simulated(f"Record not found: {service} has no record with uid {uid!r}"),
        CODE_NOT_FOUND,
    )


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


@dataclass
class Selection:
    """The leaves a ``what`` asked for, in schema order."""

    fields: list[FieldDef]


class Table:
    """One service's table: columns, selection, conditions, reads and writes."""

    def __init__(self, store: Store, schema: ServiceSchema) -> None:
        self.store = store
        self.schema = schema
        self.name = schema.name
        self.options = OPTIONS[schema.name]
        self.uid_is_int = schema.by_name["uid"].type == "integer"
        self._plans: dict[tuple, tuple] = {}
        self._option_sets: dict[tuple, Any] = {}
        self._counts: dict[tuple, tuple[int, int]] = {}

    # ---- columns ------------------------------------------------------------

    def column(self, f: FieldDef, language: str) -> str:
        """The SQL column holding a field (in a language, if multilingual)."""
        if f.multilingual:
            return quote(f"{f.name}#{language}")
        return quote(f.name)

    def storage_columns(self) -> list[tuple[str, str]]:
        """(column name, SQL type) for every stored field."""
        cols = []
        for f in self.schema.leaves():
            # uid and internalId live in the key columns; computed fields are not stored.
            if f.name in ("uid", "internalId") or (self.name, f.name) in _COMPUTED:
                continue
            sql_type = {
                "integer": "INTEGER",
                "boolean": "INTEGER",
                "datetime": "INTEGER",
                "float": "REAL",
                "string": "TEXT COLLATE NOCASE",
                "date": "TEXT",
            }.get(f.type, "TEXT")
            names = (
                [f"{f.name}#{lang}" for lang in SUPPORTED_LANGUAGES]
                if f.multilingual
                else [f.name]
            )
            cols += [(n, sql_type) for n in names]
        return cols

    def create(self, conn: sqlite3.Connection) -> None:
        uid_col = "" if self.uid_is_int else ', "uid" TEXT NOT NULL UNIQUE'
        cols = "".join(f", {quote(n)} {t}" for n, t in self.storage_columns())
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {quote(self.name)} (_id INTEGER PRIMARY KEY{uid_col}{cols})"
        )

    def create_indexes(self, conn: sqlite3.Connection) -> None:
        for f in self.schema.leaves():
            if not (f.filterable or f.sortable) or f.type in (
                "text",
                "collection",
                "boolean",
            ):
                continue
            if f.name in ("uid", "internalId") or (self.name, f.name) in _COMPUTED:
                continue
            if f.type == "string" and f.name not in _INDEXED_STRINGS:
                continue  # a full scan of 100,000 rows takes a few ms; fewer indexes seed faster
            langs = SUPPORTED_LANGUAGES if f.multilingual else (None,)
            for lang in langs:
                col = f"{f.name}#{lang}" if lang else f.name
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {quote('ix_' + self.name + '_' + col)} "
                    f"ON {quote(self.name)} ({quote(col)})"
                )
        if "Person.lastName" in self.schema.by_name:
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {quote('ix_' + self.name + '_fullname')} "
                f'ON {quote(self.name)} ("Person.lastName", "Person.firstName")'
            )

    def sql_for(self, f: FieldDef, language: str) -> str:
        """The SQL expression of a field (uid and internalId live in the key columns)."""
        if f.name == "internalId" or (f.name == "uid" and self.uid_is_int):
            return "_id"
        return self.column(f, language)

    # ---- what -> selection ----------------------------------------------------

    def select(self, what: Any, *, listing: bool) -> Selection:
        """Resolve a ``what`` (nested map of field -> 1/0, or null) to leaves."""
        if what is None or what == [] or what == {}:
            chosen = self._defaults(listing)
        elif isinstance(what, dict):
            picked, dropped = self._walk_what(what, "", listing)
            chosen = picked or [
                f for f in self._defaults(listing) if f.name not in dropped
            ]
        else:
            raise invalid(f"'what' must be an object of field names, got {what!r}")
        order = {f.name: i for i, f in enumerate(self.schema.fields)}
        unique = {f.name: f for f in chosen}
        return Selection(sorted(unique.values(), key=lambda f: order[f.name]))

    def _defaults(self, listing: bool) -> list[FieldDef]:
        if listing:
            return [f for f in self.schema.leaves() if f.in_list_by_default]
        return list(self.schema.leaves())

    def _walk_what(self, what: dict, prefix: str, listing: bool) -> tuple[list, set]:
        picked: list[FieldDef] = []
        dropped: set[str] = set()
        for key, flag in what.items():
            name = f"{prefix}{key}"
            f = self.schema.by_name.get(name)
            if f is None:
                raise invalid(f"Field '{name}' does not exist in {self.name}")
            if isinstance(flag, dict) and f.type == "container":
                sub_picked, sub_dropped = self._walk_what(flag, name + ".", listing)
                if flag and not sub_picked and not sub_dropped:
                    sub_picked = self._whole(f, listing)
                picked += sub_picked or ([] if flag else self._whole(f, listing))
                dropped |= sub_dropped
            elif flag in (0, False, "0", None) and not isinstance(flag, dict):
                dropped |= {f.name} | {g.name for g in self._whole(f, False)}
            else:
                if f.type != "container" and listing and not f.listable:
                    raise invalid(
                        f"Field '{name}' of {self.name} is not listable; read it with getDetail"
                    )
                picked += self._whole(f, listing)
        return picked, dropped

    def _whole(self, f: FieldDef, listing: bool) -> list[FieldDef]:
        """A leaf itself, or every (listable, when listing) leaf under a container."""
        if f.type != "container":
            return [f]
        start = f.name + "."
        return [
            g
            for g in self.schema.leaves()
            if g.name.startswith(start) and (g.listable or not listing)
        ]

    # ---- reading --------------------------------------------------------------

    def columns_for(self, selection: Selection, language: str) -> list[str]:
        cols = ["_id", "uid" if not self.uid_is_int else "_id"]
        for f in selection.fields:
            if (self.name, f.name) == ("CandidateService", "age"):
                cols.append(quote("Person.birthdate"))
            elif (self.name, f.name) == ("ProcedureService", "ProcedureStatus1.status"):
                cols.append(quote("ProcedureStatus1.uid"))
            else:
                cols.append(self.sql_for(f, language))
        return cols

    def render(self, row: tuple, selection: Selection, language: str) -> dict:
        """One stored row as the nested dict OWS sends."""
        return self._render(row, self._plan(selection, language))

    def _render(self, row: tuple, plan: tuple[list, list, list]) -> dict:
        out: dict[str, Any] = {}
        for parents, leaf, convert, value in zip(*plan, row[2:], strict=True):
            node = out
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value if convert is None else convert(value, row)
        return out

    def _plan(self, selection: Selection, language: str) -> tuple[list, list, list]:
        """Per selected field: its parent path, its name and its converter (None: as stored)."""
        key = (tuple(f.name for f in selection.fields), language)
        plan = self._plans.get(key)
        if plan is None:
            parents, leaves, converters = [], [], []
            for f in selection.fields:
                *path, leaf = f.name.split(".")
                parents.append(tuple(path))
                leaves.append(leaf)
                converters.append(self._converter(f, language))
            plan = self._plans[key] = (parents, leaves, converters)
        return plan

    def _converter(self, f: FieldDef, language: str) -> Any:
        """The function that turns one stored value of ``f`` into its wire form.

        Chosen once per field and language, so that rendering a page does no
        per-cell dispatch; None means the stored value goes out as it is.
        """
        key = (self.name, f.name)
        plain = f.type in ("string", "text", "integer", "float") or (
            f.type == "date" and key not in ZERO_DATES
        )
        if plain and f.name != "uid" and key not in _COMPUTED:
            return None
        if f.type == "datetime" and key not in ZERO_DATES:
            return lambda value, row: (
                None if value is None else values.format_epoch(value)
            )
        if f.type == "boolean" and key not in WIRE:
            return lambda value, row: None if value is None else bool(value)
        return lambda value, row: self.wire_value(f, value, row, language)

    def wire_value(self, f: FieldDef, value: Any, row: tuple, language: str) -> Any:
        """A stored value as sent on the wire (types, PHP habits, labels)."""
        key = (self.name, f.name)
        if f.name == "uid":
            return row[1] if not self.uid_is_int else row[0]
        if key == ("CandidateService", "age"):
            return _age(value)
        if key == ("ProcedureService", "ProcedureStatus1.status"):
            labels = self.options["ProcedureStatus1.uid"]
            return label_in(labels[value], language) if value in labels else None
        if f.type == "datetime":
            if value is None:
                return values.ZERO_DATETIME if key in ZERO_DATES else None
            return values.format_epoch(value)
        if f.type == "date":
            if value is None and key in ZERO_DATES:
                return values.ZERO_DATE
            return value
        if f.type == "boolean":
            if value is None:
                return None
            habit = WIRE.get(key)
            if habit == "str":
                return "1" if value else "0"
            if habit == "int":
                return int(value)
            return bool(value)
        if f.type == "collection":
            return self._collection_out(f, value, language)
        return value

    def _collection_out(self, f: FieldDef, value: Any, language: str) -> Any:
        if f.name in _OPTION_COLLECTIONS and value:
            # Few distinct option sets recur on every page: render each once.
            cache_key = (f.name, value, language)
            cached = self._option_sets.get(cache_key)
            if cached is None:
                cached = self._option_sets[cache_key] = self._render_collection(
                    f, value, language
                )
            return dict(cached) if cached else []
        return self._render_collection(f, value, language)

    def _render_collection(self, f: FieldDef, value: Any, language: str) -> Any:
        data = json.loads(value) if value else None
        if f.name in _OPTION_COLLECTIONS:
            labels = self.options[f.name]
            data = {
                str(i): label_in(labels[i], language) for i in data or [] if i in labels
            }
        # PHP's json_encode turns an empty array into [] whether it was a map or a list.
        return data if data else []

    def fetch(self, uid: Any, selection: Selection, language: str) -> dict:
        where, param = self.uid_clause(uid)
        cols = ", ".join(self.columns_for(selection, language))
        row = self.store.one(
            f"SELECT {cols} FROM {quote(self.name)} WHERE {where}", (param,)
        )
        if row is None:
            raise not_found(self.name, uid)
        return self.render(row, selection, language)

    def uid_clause(self, uid: Any) -> tuple[str, Any]:
        if isinstance(uid, int) and not isinstance(uid, bool):
            try:
                values.in_range(uid)
            except values.OutOfRange as exc:
                raise invalid(f"uid: {exc}") from None
        if self.uid_is_int:
            try:
                return "_id = ?", values.to_int(uid)
            except values.OutOfRange as exc:
                raise invalid(f"uid: {exc}") from None
            except values.ValueProblem:
                raise not_found(self.name, uid) from None
        if not isinstance(uid, (str, int)) or isinstance(uid, bool):
            raise invalid(f"a uid must be a string, got {uid!r}")
        return "uid = ?", str(uid)

    def exists(self, uid: Any) -> bool:
        try:
            where, param = self.uid_clause(uid)
        except Fault:
            return False
        return (
            self.store.one(f"SELECT 1 FROM {quote(self.name)} WHERE {where}", (param,))
            is not None
        )

    def list(self, args: dict, language: str) -> tuple[list[dict], int | None]:
        """A page of records for getList/getListEx, and the total when asked."""
        if not isinstance(args, dict):
            raise invalid(f"the list arguments must be an object, got {args!r}")
        selection = self.select(args.get("what"), listing=True)
        where, params = self.compile_condition(args.get("condition"), language)
        order = self.compile_sort(args.get("sort", args.get("order")), language)
        limit, offset = _page(args)
        cols = ", ".join(self.columns_for(selection, language))
        sql = (
            f"SELECT {cols} FROM {quote(self.name)} WHERE {where} "
            f"ORDER BY {order} LIMIT ? OFFSET ?"
        )
        rows = self.store.all(sql, (*params, limit, offset))
        total = (
            self.count(where, params)
            if values.php_truthy(args.get("getTotalCount"))
            else None
        )
        plan = self._plan(selection, language)
        return [self._render(r, plan) for r in rows], total

    def count(self, where: str, params: list) -> int:
        """COUNT(*) of a condition, remembered until the database next changes."""
        with self.store.lock:
            changes = self.store.conn.total_changes
            key = (where, tuple(params))
            cached = self._counts.get(key)
            if cached is not None and cached[0] == changes:
                return cached[1]
            total = self.store.one(
                f"SELECT COUNT(*) FROM {quote(self.name)} WHERE {where}", params
            )[0]
            if len(self._counts) > 256:
                self._counts.clear()
            self._counts[key] = (changes, total)
            return total

    # ---- conditions and sort ---------------------------------------------------

    def compile_condition(self, cond: Any, language: str) -> tuple[str, list]:
        if cond is None or cond == [] or cond == {}:
            return "1", []
        if not isinstance(cond, dict):
            raise invalid(f"a condition must be an object with 'type', got {cond!r}")
        kind = str(cond.get("type", "")).upper()
        if kind in ("AND", "OR"):
            items = cond.get("items")
            if not isinstance(items, list):
                raise invalid(f"a {kind} condition needs a list 'items', got {items!r}")
            parts, params = [], []
            for item in items:
                sql, p = self.compile_condition(item, language)
                parts.append(f"({sql})")
                params += p
            return (f" {kind} ".join(parts) if parts else "1"), params
        if kind != "COND":
            raise invalid(
                f"condition type must be COND, AND or OR, got {cond.get('type')!r}"
            )
        return self._compile_cond(cond, language)

    def _compile_cond(self, cond: dict, language: str) -> tuple[str, list]:
        name = cond.get("field")
        f = self.schema.by_name.get(name) if isinstance(name, str) else None
        if f is None:
            raise invalid(f"Field {name!r} does not exist in {self.name}")
        if not f.filterable or f.type == "container":
            raise invalid(f"Field '{name}' of {self.name} is not filterable")
        op = str(cond.get("op", "")).upper()
        if op not in _OPS:
            raise invalid(
                f"unknown operator {cond.get('op')!r} on field '{name}'; use one of {sorted(_OPS)}"
            )
        param = cond.get("param")
        col = self.sql_for(f, language)
        try:
            return self._cond_sql(f, col, op, param)
        except values.ValueProblem as exc:
            raise invalid(f"bad param for field '{name}' ({op}): {exc}") from None

    def _cond_sql(self, f: FieldDef, col: str, op: str, param: Any) -> tuple[str, list]:
        if op in ("T", "F"):
            if f.type != "boolean":
                raise values.ValueProblem(
                    f"operator {op} needs a boolean field, '{f.name}' is {f.type}"
                )
            return (
                (f"{col} = 1", [])
                if op == "T"
                else (f"({col} = 0 OR {col} IS NULL)", [])
            )
        if f.type == "collection":
            return self._collection_cond(f, col, op, param)
        if isinstance(param, list):
            if op not in ("EQ", "NE"):
                raise values.ValueProblem(f"a list param needs EQ or NE, not {op}")
            items = [self._param(f, p) for p in param]
            if not items:
                return ("0", []) if op == "EQ" else ("1", [])
            marks = ", ".join("?" * len(items))
            if op == "EQ":
                return f"{col} IN ({marks})", items
            return f"({col} NOT IN ({marks}) OR {col} IS NULL)", items
        if op in ("LIKE", "NLIKE"):
            if f.type == "boolean":
                raise values.ValueProblem(f"LIKE does not apply to a {f.type} field")
            pattern = values.to_text(param) or ""
            negate = "NOT " if op == "NLIKE" else ""
            if f.type == "datetime":
                col = f"strftime('%Y-%m-%d %H:%M:%S', {col}, 'unixepoch')"
            if not pattern.isascii():
                return f"ows_lower({col}) {negate}LIKE ? ESCAPE '\\'", [pattern.lower()]
            return f"{col} {negate}LIKE ? ESCAPE '\\'", [pattern]
        if param is None or param == "":
            empty = (
                f"({col} IS NULL"
                + (f" OR {col} = ''" if f.type in ("string", "text") else "")
                + ")"
            )
            if op == "EQ" or (op in ("LE", "LT") and param == ""):
                return empty, []
            if op in ("NE", "GT", "GE"):
                return f"NOT {empty}", []
            raise values.ValueProblem(f"operator {op} needs a value")
        value = self._param(f, param)
        sql_op = _COMPARE[op]
        if (
            f.type in ("string", "text")
            and isinstance(value, str)
            and not value.isascii()
        ):
            return f"ows_lower({col}) {sql_op} ?", [value.lower()]
        return f"{col} {sql_op} ?", [value]

    def _param(self, f: FieldDef, param: Any) -> Any:
        if f.type == "boolean":
            return values.to_bool(param)
        if f.type in ("string", "text"):
            if isinstance(param, float):
                return str(param)
            return values.to_text(param)
        return values.to_storage(f.type, param)

    def _collection_cond(
        self, f: FieldDef, col: str, op: str, param: Any
    ) -> tuple[str, list]:
        if f.name not in _OPTION_COLLECTIONS or op not in ("EQ", "NE"):
            raise values.ValueProblem(
                f"'{f.name}' can only be filtered with EQ/NE on option ids"
            )
        ids = [
            values.to_int(p) for p in (param if isinstance(param, list) else [param])
        ]
        marks = ", ".join("?" * len(ids)) or "NULL"
        exists = f"EXISTS (SELECT 1 FROM json_each({col}) WHERE value IN ({marks}))"
        return (exists if op == "EQ" else f"NOT {exists}"), ids

    def compile_sort(self, sort: Any, language: str) -> str:
        if sort is None or sort == [] or sort == {}:
            return "_id ASC"
        if not isinstance(sort, dict):
            raise invalid(
                f"'sort' must be an object of field -> ASC/DESC, got {sort!r}"
            )
        parts = []
        for name, direction in sort.items():
            f = self.schema.by_name.get(name)
            if f is None:
                raise invalid(f"Field '{name}' does not exist in {self.name}")
            if not f.sortable or f.type in ("container", "collection"):
                raise invalid(f"Field '{name}' of {self.name} is not sortable")
            word = str(direction).upper()
            if word not in ("ASC", "DESC"):
                raise invalid(
                    f"sort direction of '{name}' must be ASC or DESC, got {direction!r}"
                )
            parts.append(f"{self.sql_for(f, language)} {word}")
        parts.append("_id ASC")
        return ", ".join(parts)

    # ---- writing ----------------------------------------------------------------

    def flatten_input(self, payload: Any, prefix: str = "") -> dict[str, Any]:
        """A nested write payload as {dotted field: value}, refusing unknown fields."""
        if not isinstance(payload, dict):
            raise invalid(f"the fields to write must be an object, got {payload!r}")
        flat: dict[str, Any] = {}
        for key, value in payload.items():
            name = f"{prefix}{key}"
            f = self.schema.by_name.get(name)
            if f is None:
                raise invalid(f"Field '{name}' does not exist in {self.name}")
            if f.type == "container":
                if value == []:
                    continue
                flat.update(self.flatten_input(value, name + "."))
            else:
                flat[name] = value
        return flat

    def prepare(
        self, payload: Any, *, adding: bool, language: str, force: bool = False
    ) -> dict[str, Any]:
        """Validate a write and return {column: stored value}. Nothing is written."""
        flat = self.flatten_input(payload)
        out: dict[str, Any] = {}
        for name, value in flat.items():
            f = self.schema.by_name[name]
            if (self.name, name) in _COMPUTED or name in ("uid", "internalId"):
                raise invalid(
                    f"Field '{name}' of {self.name} is computed by the server"
                )
            if adding and not f.insertable and not force:
                raise invalid(f"Field '{name}' of {self.name} is not insertable")
            if not adding and not f.updatable and not force:
                raise invalid(f"Field '{name}' of {self.name} is not updatable")
            if f.not_empty and (value is None or value == "" or value == []):
                raise invalid(f"Field '{name}' of {self.name} may not be empty")
            out[self.column(f, language).strip('"')] = self._store_value(f, value)
        if adding:
            for f in self.schema.leaves():
                if f.obligatory and flat.get(f.name) in (None, ""):
                    raise invalid(f"Field '{f.name}' of {self.name} is obligatory")
        return out

    def _store_value(self, f: FieldDef, value: Any) -> Any:
        try:
            if f.type == "collection":
                return self._collection_in(f, value)
            stored = values.to_storage(f.type, value)
        except values.ValueProblem as exc:
            raise invalid(f"Field '{f.name}' of {self.name}: {exc}") from None
        if f.has_options and stored is not None:
            self.check_option(f, stored)
        return stored

    def check_option(self, f: FieldDef, value: Any) -> None:
        source = self.options[f.name]
        if source == "users":
            known = self.store.tables["UserService"].exists(value)
        else:
            known = value in source
        if not known:
            raise invalid(
                f"Field '{f.name}' of {self.name}: {value!r} is not one of its options"
            )

    def _collection_in(self, f: FieldDef, value: Any) -> str | None:
        if f.name in _OPTION_COLLECTIONS:
            if value is None or value == [] or value == {}:
                return None
            keys = (
                list(value)
                if isinstance(value, dict)
                else value
                if isinstance(value, list)
                else [value]
            )
            ids = [values.to_int(k) for k in keys]
            for i in ids:
                self.check_option(f, i)
            return json.dumps(sorted(set(ids)))
        if f.name in _ITEM_COLLECTIONS:
            return value  # merged with the stored items in Store.add / Store.update
        return json.dumps(value) if value else None

    def merge_items(self, f: FieldDef, current: list, value: Any) -> list:
        """Apply a write to a list collection: a list replaces, a map edits."""
        allowed = _ITEM_COLLECTIONS[f.name]

        def item(x: Any) -> dict:
            if not isinstance(x, dict) or set(x) - set(allowed):
                raise invalid(
                    f"items of '{f.name}' must be objects with keys {list(allowed)}, got {x!r}"
                )
            if (
                f.name == "Person.PhoneNumbers"
                and x.get("type", "other") not in _PHONE_TYPES
            ):
                raise invalid(
                    f"phone type must be one of {list(_PHONE_TYPES)}, got {x.get('type')!r}"
                )
            return {k: x.get(k) for k in allowed}

        if value is None or value == []:
            return []
        if isinstance(value, list):
            return [item(x) for x in value]
        if not isinstance(value, dict):
            raise invalid(
                f"'{f.name}' takes a list of items or a map of edits, got {value!r}"
            )
        items = list(current)
        drop = value.get("DELETE") or []
        added = value.get("ADD") or []
        if not isinstance(drop, list):
            raise invalid(f"DELETE of '{f.name}' must be a list of item numbers")
        if not isinstance(added, list):
            raise invalid(f"ADD of '{f.name}' must be a list of items, got {added!r}")
        # A number past the end appends; one further than the edits could reach is a mistake.
        last = len(items) + len(value)
        for key, x in value.items():
            if key in ("DELETE", "ADD", "UPDATE"):
                continue
            slot = int(key) if values.is_ascii_digits(key) and len(key) < 10 else None
            if slot is None or not 1 <= slot <= last:
                raise invalid(
                    f"'{f.name}' edit keys are item numbers (1 to {last}), ADD or DELETE; got {key!r}"
                )
            while len(items) < slot:
                items.append(None)
            items[slot - 1] = item(x)
        for x in added:
            items.append(item(x))
        try:
            gone = {values.to_int(k) for k in drop}
        except values.ValueProblem as exc:
            raise invalid(f"DELETE of '{f.name}' takes item numbers: {exc}") from None
        return [x for i, x in enumerate(items, 1) if x is not None and i not in gone]


def _age(birthdate: str | None) -> int | None:
    if not birthdate:
        return None
    born = dt.date.fromisoformat(birthdate)
    today = dt.date.today()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _page(args: dict) -> tuple[int, int]:
    """(limit, offset) of a list request; flags read as PHP reads them."""
    cap = (
        PAGE_CAP_EXCLUDED
        if values.php_truthy(args.get("excludeLimitCheck"))
        else PAGE_CAP
    )
    found = {}
    for name in ("limit", "offset"):
        try:
            found[name] = values.to_int(args.get(name))
        except values.OutOfRange as exc:
            raise invalid(f"{name}: {exc}") from None
        except values.ValueProblem as exc:
            raise invalid(f"limit and offset must be integers: {exc}") from None
    limit, offset = found["limit"], found["offset"] or 0
    if limit is None:
        limit = cap
    if limit < 0 or offset < 0:
        raise invalid(
            f"limit and offset may not be negative (limit {limit}, offset {offset})"
        )
    return min(limit, cap), offset


class Store:
    """The sandbox's database: service tables plus files, dossier items, merges."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or ":memory:"
        self.conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None
        )
        self.conn.create_function("ows_lower", 1, _unicode_lower, deterministic=True)
        if path:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.lock = threading.RLock()
        self.tables = {name: Table(self, schema) for name, schema in SERVICES.items()}
        self.uid_rng = random.Random()
        with self.lock:
            for table in self.tables.values():
                table.create(self.conn)
            self.conn.executescript(_EXTRA_TABLES)

    # ---- plumbing -------------------------------------------------------------

    def one(self, sql: str, params: Iterable = ()) -> tuple | None:
        with self.lock:
            return self.conn.execute(sql, tuple(params)).fetchone()

    def all(self, sql: str, params: Iterable = ()) -> list[tuple]:
        with self.lock:
            return self.conn.execute(sql, tuple(params)).fetchall()

    def execute(self, sql: str, params: Iterable = ()) -> sqlite3.Cursor:
        with self.lock:
            return self.conn.execute(sql, tuple(params))

    def meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
        )

    def new_uid(self) -> str:
        """A fresh 16-hex-digit uid (unique across every table)."""
        while True:
            uid = f"{self.uid_rng.getrandbits(64):016x}"
            if not any(t.exists(uid) for t in self.tables.values() if not t.uid_is_int):
                return uid

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    # ---- writes ---------------------------------------------------------------

    def add(
        self, service: str, payload: Any, language: str, *, defaults: dict | None = None
    ) -> Any:
        table = self.tables[service]
        with self.lock:
            row = table.prepare(payload, adding=True, language=language)
            for name in _ITEM_COLLECTIONS:
                if name in row:
                    f = table.schema.by_name[name]
                    row[name] = (
                        json.dumps(table.merge_items(f, [], row[name]))
                        if row[name]
                        else None
                    )
            now = int(time.time())
            row.update(
                {k: v for k, v in (defaults or {}).items() if row.get(k) is None}
            )
            for stamp in ("entryDateTime", "lastModified"):
                if stamp in table.schema.by_name:
                    row[stamp] = now
            if not table.uid_is_int:
                row["uid"] = self.new_uid()
            cols = ", ".join(quote(c) for c in row)
            marks = ", ".join("?" * len(row))
            cur = self.conn.execute(
                f"INSERT INTO {quote(service)} ({cols}) VALUES ({marks})",
                tuple(row.values()),
            )
            return cur.lastrowid if table.uid_is_int else row["uid"]

    def update(
        self,
        service: str,
        uid: Any,
        payload: Any,
        language: str,
        *,
        force: bool = False,
    ) -> dict:
        """Apply a partial update; returns the manual's result shape."""
        table = self.tables[service]
        with self.lock:
            where, param = table.uid_clause(uid)
            if not table.exists(uid):
                raise not_found(service, uid)
            row = table.prepare(payload, adding=False, language=language, force=force)
            for name in _ITEM_COLLECTIONS:
                if name in row:
                    f = table.schema.by_name[name]
                    cur = self.one(
                        f"SELECT {quote(name)} FROM {quote(service)} WHERE {where}",
                        (param,),
                    )[0]
                    merged = table.merge_items(
                        f, json.loads(cur) if cur else [], row[name]
                    )
                    row[name] = json.dumps(merged) if merged else None
            if "lastModified" in table.schema.by_name:
                row["lastModified"] = max(
                    int(time.time()),
                    (
                        self.one(
                            f'SELECT "lastModified" FROM {quote(service)} WHERE {where}',
                            (param,),
                        )[0]
                        or 0
                    )
                    + 1,
                )
            if row:
                sets = ", ".join(f"{quote(c)} = ?" for c in row)
                self.conn.execute(
                    f"UPDATE {quote(service)} SET {sets} WHERE {where}",
                    (*row.values(), param),
                )
        # The manual shows containers written coming back as empty arrays.
        shape = {
            k: []
            for k, v in payload.items()
            if table.schema.by_name[k].type == "container"
        }
        return shape or []

    def delete(self, service: str, uid: Any) -> Any:
        table = self.tables[service]
        with self.lock:
            where, param = table.uid_clause(uid)
            cur = self.conn.execute(
                f"DELETE FROM {quote(service)} WHERE {where}", (param,)
            )
            if cur.rowcount == 0:
                raise not_found(service, uid)
        return {"Person": []} if "Person" in table.schema.by_name else []


_EXTRA_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files (
    ouid TEXT PRIMARY KEY, name TEXT, mime TEXT, size INTEGER, data BLOB, created INTEGER);
CREATE TABLE IF NOT EXISTS dossier (
    id INTEGER PRIMARY KEY, entity_id INTEGER, object_uid TEXT, file_ouid TEXT,
    type_id TEXT, subject TEXT, description TEXT, private INTEGER, created INTEGER, user_id INTEGER);
CREATE INDEX IF NOT EXISTS ix_dossier_object ON dossier (entity_id, object_uid);
CREATE TABLE IF NOT EXISTS merges (
    id INTEGER PRIMARY KEY, merged INTEGER,
    src_id INTEGER, src_uid TEXT, src_nr TEXT, dst_id INTEGER, dst_uid TEXT, dst_nr TEXT);
CREATE INDEX IF NOT EXISTS ix_merges_src ON merges (src_uid);
CREATE INDEX IF NOT EXISTS ix_merges_dst ON merges (dst_uid);
CREATE TABLE IF NOT EXISTS portal_tokens (
    token TEXT PRIMARY KEY, webuser TEXT, url TEXT, expires INTEGER);
"""
