"""The OWS methods the sandbox answers, one handler each.

:class:`Dispatcher` takes a method name and its params (session token first,
as OWS wants) and returns the result, or raises :class:`~.store.Fault`.
Unknown methods fail loudly with a message naming them.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import values
from .schema import (
    DEFAULT_LANGUAGE,
    ENTITY_IDS,
    OPTION_KEYS,
    SERVICES,
    SUPPORTED_LANGUAGES,
    TENANT_LANGUAGES,
    label_in,
)
from .seed import merge_item
from .store import (
    CODE_ACCESS,
    CODE_NO_METHOD,
    CODE_NOT_FOUND,
    Fault,
    invalid,
    simulated,
)

if TYPE_CHECKING:
    from .server import Sandbox, SessionState

log = logging.getLogger(__name__)

PREFIX = "Otys.Services."
CODE_BAD_REQUEST = -32600
CODE_INTERNAL = -32603
LOGIN_FIRST = "Access denied; please login first"
LOGIN_AGAIN = "Access denied; please login again"
UNPREFIXED = {"loginByUid", "login", "loginAs", "check", "logout"}
WRITE_METHODS = {"add", "update", "delete", "updateEx"}
_ENTITY_SERVICE = {
    "candidateUid": "CandidateService",
    "relationUid": "RelationService",
    "relationContactUid": "RelationContactService",
    "vacancyUid": "VacancyService",
}
_ATTACH_FIELDS = {
    "fileUid",
    "typeId",
    "subject",
    "description",
    "private",
    "alwaysOnTop",
    "customerRightsLevel",
    "applicationUid",
}
PORTAL_MAX_DAYS = 365


def short_method(method: Any) -> str:
    """``Otys.Services.CandidateService.getList`` -> ``CandidateService.getList``."""
    if not isinstance(method, str) or not method:
        raise Fault(
            simulated(
                f"Invalid request: 'method' must be a non-empty string, got {values.short_repr(method)}"
            ),
            CODE_BAD_REQUEST,
        )
    return method[len(PREFIX) :] if method.startswith(PREFIX) else method


def object_params(params: dict) -> list:
    """Params a PHP client sent as an object: numbered keys in order, then the rest as one object.

    ``{"0": token, "what": {...}}`` (an associative array with the session
    prepended) becomes ``[token, {"what": {...}}]``.
    """
    numbered = sorted(
        (_numeric_order(k), v) for k, v in params.items() if values.is_ascii_digits(k)
    )
    named = {k: v for k, v in params.items() if not values.is_ascii_digits(k)}
    return [v for _, v in numbered] + ([named] if named else [])


def _numeric_order(digits: str) -> tuple[int, str]:
    """A sort key that orders ASCII digit strings by value, however long."""
    significant = digits.lstrip("0")
    return len(significant), significant


def is_write(method: str) -> bool:
    """Whether a method (short name) changes data."""
    verb = method.rpartition(".")[2]
    return verb in WRITE_METHODS or method in (
        "AttachedDocumentsService.add",
        "OCDService.createToken",
    )


class Dispatcher:
    """Runs one JSON-RPC call against the sandbox's data and sessions."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.store = sandbox.store
        self.special: dict[str, Callable[..., Any]] = {
            "CandidateService.retrieveDuplicateInfo": self.retrieve_duplicate_info,
            "OCDService.createToken": self.create_portal_token,
            "AttachedDocumentsService.add": self.attach_document,
            "DossierService.getList": self.dossier_list,
            "DossierService.getCount": self.dossier_count,
        }

    # ---- entry point ------------------------------------------------------------

    def call(self, method: Any, params: Any, language: str | None = None) -> Any:
        """Run one call; input the sandbox cannot hold is refused as a Fault."""
        try:
            return self._call(method, params, language)
        except OverflowError as exc:  # a number SQLite cannot store
            raise invalid(f"value out of range: {exc}") from None
        except RecursionError:
            raise Fault(
                simulated("Invalid request: nested too deeply to process"),
                CODE_BAD_REQUEST,
            ) from None
        except sqlite3.OperationalError as exc:
            if not any(w in str(exc) for w in ("too many", "too large", "too complex")):
                raise
            raise invalid(f"the request is too large to run: {exc}") from None

    def _call(self, method: Any, params: Any, language: str | None) -> Any:
        name = short_method(method)
        if isinstance(params, dict):
            params = object_params(params)
        if params is None:
            params = []
        if not isinstance(params, list):
            raise Fault(
                simulated(
                    f"Invalid request: 'params' must be an array, got {params!r}"
                ),
                CODE_BAD_REQUEST,
            )
        self.sb.count_call(name)

        if name in UNPREFIXED:
            return getattr(self, f"m_{name}")(params)
        if name == "LanguageService.wrapRequest":
            return self.wrap_request(params)
        if name == "MultiService.execute":
            return self.multi_execute(params)

        service, _, verb = name.rpartition(".")
        handler = self.special.get(name)
        generic = service in SERVICES and hasattr(self, f"g_{verb}")
        # setLanguage exists on the record services only, like their other methods.
        language_setter = verb == "setLanguage" and service in SERVICES
        if handler is None and not generic and not language_setter:
            raise Fault(
                simulated(f"Method {PREFIX}{name} does not exist"),
                CODE_NO_METHOD,
            )
        session = self.sb.authenticate(params[0] if params else None)
        lang = language or session.language or DEFAULT_LANGUAGE
        args = params[1:]
        if language_setter and handler is None:
            return self.set_language(session, args)
        if handler is not None:
            return handler(session, lang, *args)
        return getattr(self, f"g_{verb}")(service, session, lang, *args)

    # ---- sessions -------------------------------------------------------------

    def m_loginByUid(self, params: list) -> Any:
        key = params[0] if params else None
        # An unknown key gives result false, as the PHP clients expect (see the module docs).
        if not isinstance(key, str) or not secrets.compare_digest(
            key.encode(), self.sb.api_key.encode()
        ):
            self.sb.count_failed_login()
            return False
        return self.sb.open_session(key)

    def m_login(self, params: list) -> Any:
        username, password = ([*list(params), None, None])[:2]
        if username == self.sb.username and password == self.sb.password:
            return self.sb.open_session(self.sb.api_key)
        self.sb.count_failed_login()
        return False

    def m_loginAs(self, params: list) -> Any:
        raise Fault(
            simulated("Method loginAs is not available to API users"), CODE_ACCESS
        )

    def m_check(self, params: list) -> dict:
        self.sb.authenticate(params[0] if params else None)
        return {
            "clientId": 4321,
            "client": "Sandbox Werving & Selectie B.V. (simulated)",
            "id": 1,
            "username": self.sb.username,
            "email": "user1@sandbox.example.nl",
            "contentLanguages": list(TENANT_LANGUAGES),
            "defaultContentLanguage": DEFAULT_LANGUAGE,
        }

    def m_logout(self, params: list) -> bool:
        session = self.sb.authenticate(params[0] if params else None)
        self.sb.close_session(session.token)
        return True

    def set_language(self, session: SessionState, args: list) -> bool:
        session.language = self.language_code(args[0] if args else None)
        return True

    @staticmethod
    def language_code(code: Any) -> str:
        if code not in SUPPORTED_LANGUAGES:
            raise invalid(
                f"Unsupported content language {code!r}; use one of {', '.join(SUPPORTED_LANGUAGES)}"
            )
        return code

    # ---- wrappers -------------------------------------------------------------

    def wrap_request(self, params: list) -> Any:
        if len(params) < 2:
            raise invalid("wrapRequest takes [language, request]")
        lang = self.language_code(params[0])
        inner = params[1]
        if isinstance(inner, str):
            try:
                inner = json.loads(inner)
            except ValueError:
                raise invalid("the wrapped request is not valid JSON") from None
        if not isinstance(inner, dict) or "method" not in inner:
            raise invalid(
                "the wrapped request must be a JSON-RPC object with 'method' and 'params'"
            )
        return self.call(inner["method"], inner.get("params"), language=lang)

    def multi_execute(self, params: list) -> Any:
        calls = params[0] if params else None
        if isinstance(calls, list):
            return [self._multi_one(c) for c in calls]
        if isinstance(calls, dict):
            return {name: self._multi_one(c) for name, c in calls.items()}
        raise invalid("MultiService.execute takes an array or an object of calls")

    def _multi_one(self, call: Any) -> dict:
        try:
            if not isinstance(call, dict) or "method" not in call:
                raise invalid(
                    "each MultiService call must be an object with 'method' and 'args'"
                )
            data = self.call(call["method"], call.get("args", call.get("params")))
            return {"status": "success", "data": data}
        except Fault as fault:
            return {"status": "error", "message": fault.message, "code": fault.code}
        except Exception as exc:  # a sandbox bug fails this call only, loudly
            log.exception("sandbox failed inside MultiService")
            return {
                "status": "error",
                "message": f"Internal sandbox error: {type(exc).__name__}: {exc}",
                "code": CODE_INTERNAL,
            }

    # ---- generic service methods ---------------------------------------------------

    def g_getListEx(
        self, service: str, session: SessionState, lang: str, args: Any = None, *_: Any
    ) -> dict:
        rows, total = self.store.tables[service].list(
            args if args is not None else {}, lang
        )
        self.sb.after_list(service)
        return {"listOutput": rows, "totalCount": total, "searchExtras": []}

    def g_getList(
        self, service: str, session: SessionState, lang: str, args: Any = None, *_: Any
    ) -> list:
        return self.g_getListEx(service, session, lang, args)["listOutput"]

    def g_getDetail(
        self,
        service: str,
        session: SessionState,
        lang: str,
        uid: Any = None,
        what: Any = None,
        *_: Any,
    ) -> dict:
        table = self.store.tables[service]
        selection = table.select(what, listing=False)
        return table.fetch(uid, selection, lang)

    def g_add(
        self,
        service: str,
        session: SessionState,
        lang: str,
        fields: Any = None,
        *_: Any,
    ) -> Any:
        self._check_references(service, fields)
        defaults = {"userId": 1} if "userId" in SERVICES[service].by_name else {}
        return self.store.add(service, fields, lang, defaults=defaults)

    def g_update(
        self,
        service: str,
        session: SessionState,
        lang: str,
        uid: Any = None,
        fields: Any = None,
        *_: Any,
    ) -> Any:
        self._check_references(service, fields)
        return self.store.update(service, uid, fields, lang)

    g_updateEx = g_update

    def g_delete(
        self, service: str, session: SessionState, lang: str, uid: Any = None, *_: Any
    ) -> Any:
        return self.store.delete(service, uid)

    def g_getOptionLists(
        self,
        service: str,
        session: SessionState,
        lang: str,
        fields: Any = None,
        *_: Any,
    ) -> Any:
        if not isinstance(fields, list) or not fields:
            raise invalid("getOptionLists takes a list of field names")
        table = self.store.tables[service]
        out = {}
        for name in fields:
            f = table.schema.by_name.get(name) if isinstance(name, str) else None
            if f is None:
                raise invalid(f"Field {name!r} does not exist in {service}")
            if not f.has_options:
                raise invalid(f"Field '{name}' of {service} has no option list")
            out[OPTION_KEYS.get(name, name)] = (
                self.option_list(service, name, lang) or []
            )
        return out

    def option_list(self, service: str, field: str, lang: str) -> dict[str, str]:
        source = self.store.tables[service].options[field]
        if source == "users":
            rows = self.store.all(
                'SELECT _id, "Person.firstName", "Person.infix", "Person.lastName" FROM "UserService" ORDER BY _id'
            )
            return {str(r[0]): " ".join(p for p in r[1:] if p) for r in rows}
        return {str(k): label_in(v, lang) for k, v in source.items()}

    def _check_references(self, service: str, fields: Any) -> None:
        """Procedures must point at an existing candidate and vacancy."""
        if service != "ProcedureService" or not isinstance(fields, dict):
            return
        status = fields.get("ProcedureStatus1")
        if isinstance(status, dict) and isinstance(status.get("uid"), str):
            m = re.fullmatch(r"1_(\d+)", status["uid"])
            if m:
                status["uid"] = int(m.group(1))
        for key, target in (
            ("candidateUid", "CandidateService"),
            ("vacancyUid", "VacancyService"),
        ):
            if key in fields and not self.store.tables[target].exists(fields[key]):
                raise invalid(
                    f"Field '{key}' of {service}: no {target} record with uid {fields[key]!r}"
                )

    # ---- duplicates ---------------------------------------------------------------

    def retrieve_duplicate_info(
        self, session: SessionState, lang: str, identifier: Any = None, *_: Any
    ) -> dict:
        if (
            isinstance(identifier, bool)
            or not isinstance(identifier, (str, int))
            or str(identifier).strip() == ""
        ):
            raise invalid(
                f"retrieveDuplicateInfo takes a candidate uid, internalId or personalNr, got {identifier!r}"
            )
        if isinstance(identifier, int):
            try:
                values.in_range(identifier)
            except values.OutOfRange as exc:
                raise invalid(f"retrieveDuplicateInfo: {exc}") from None
        ident = str(identifier).strip()
        # A digit string too long for an internalId can still be a personalNr.
        numeric = (
            int(ident)
            if values.is_ascii_digits(ident)
            and len(ident) <= 19
            and int(ident) <= values.INT_MAX
            else None
        )
        # Step 1: the ids OTYS generates (uid, internalId) of merged or existing candidates.
        start = self.store.one(
            "SELECT src_uid FROM merges WHERE src_uid = ? OR src_id = ? ORDER BY id LIMIT 1",
            (ident, numeric),
        )
        live = self.store.one(
            'SELECT uid FROM "CandidateService" WHERE uid = ? OR _id = ?',
            (ident, numeric),
        )
        # Step 2: the personalNr the client keeps, only if step 1 found nothing.
        if start is None and live is None:
            start = self.store.one(
                "SELECT src_uid FROM merges WHERE src_nr = ? ORDER BY id LIMIT 1",
                (ident,),
            )
            live = self.store.one(
                'SELECT uid FROM "CandidateService" WHERE "personalNr" = ?', (ident,)
            )
        if start is None and live is None:
            raise Fault(
                simulated(
                    f"Record not found: no candidate or merge known for {identifier!r}"
                ),
                CODE_NOT_FOUND,
            )
        history = {}
        if start is not None:
            current = start[0]
            while True:
                row = self.store.one(
                    "SELECT merged, src_id, src_uid, src_nr, dst_id, dst_uid, dst_nr FROM merges "
                    "WHERE src_uid = ? ORDER BY id DESC LIMIT 1",
                    (current,),
                )
                if row is None:
                    break
                history[str(row[1])] = merge_item(row)
                current = row[5]
            final = current
        else:
            final = live[0]
            stored = self.store.one(
                'SELECT "mergeHistory" FROM "CandidateService" WHERE uid = ?', (final,)
            )
            history = json.loads(stored[0]) if stored and stored[0] else {}
        cand = self.store.one(
            'SELECT _id, uid, "personalNr" FROM "CandidateService" WHERE uid = ?',
            (final,),
        )
        new_id, new_uid, new_nr = cand if cand else (None, final, None)
        return {
            "mergeHistory": history or [],
            "newCandidateId": str(new_id) if new_id is not None else None,
            "newCandidateOuid": new_uid,
            "newCandidatePersonalNr": new_nr,
        }

    # ---- portal links --------------------------------------------------------------

    def create_portal_token(
        self,
        session: SessionState,
        lang: str,
        webuser: Any = None,
        target: Any = None,
        days: Any = None,
        *_: Any,
    ) -> str:
        if not isinstance(webuser, str) or not webuser.strip():
            raise invalid(
                f"createToken: the webuser uid must be a non-empty string, got {webuser!r}"
            )
        if not isinstance(target, dict) or set(target) != {"url"}:
            raise invalid(
                f'createToken: the second argument must be {{"url": ...}}, got {target!r}'
            )
        url = target["url"]
        if not isinstance(url, str) or not re.match(
            r"^https?://[^\s/]+\.[^\s/]+(/\S*)?$", url
        ):
            raise invalid(
                f"createToken: {url!r} is not an http(s) URL of a portal page"
            )
        try:
            n_days = values.to_int(days)
        except values.ValueProblem:
            n_days = None
        if n_days is None or not 1 <= n_days <= PORTAL_MAX_DAYS:
            raise invalid(
                f"createToken: expiration days must be a whole number from 1 to {PORTAL_MAX_DAYS}, got {days!r}"
            )
        token = secrets.token_hex(20)
        self.store.execute(
            "INSERT INTO portal_tokens (token, webuser, url, expires) VALUES (?, ?, ?, ?)",
            (token, webuser, url, int(time.time()) + n_days * 86400),
        )
        return token

    # ---- files and dossiers ------------------------------------------------------------

    def attach_document(
        self, session: SessionState, lang: str, fields: Any = None, *_: Any
    ) -> str:
        if not isinstance(fields, dict):
            raise invalid("AttachedDocumentsService.add takes an object of fields")
        keys = [k for k in fields if k in ENTITY_IDS.values()]
        unknown = set(fields) - _ATTACH_FIELDS - set(ENTITY_IDS.values())
        if unknown:
            raise invalid(
                f"Field '{sorted(unknown)[0]}' does not exist in AttachedDocumentsService"
            )
        if len(keys) != 1:
            raise invalid(
                "give exactly one entity key ("
                + ", ".join(ENTITY_IDS.values())
                + f"), got {keys or 'none'}"
            )
        key = keys[0]
        owner = fields[key]
        target = _ENTITY_SERVICE.get(key)
        if not isinstance(owner, str) or not owner:
            raise invalid(f"Field '{key}' must be a record uid string, got {owner!r}")
        if target and not self.store.tables[target].exists(owner):
            raise invalid(f"Field '{key}': no {target} record with uid {owner!r}")
        file_uid = fields.get("fileUid")
        if not self.store.one("SELECT 1 FROM files WHERE ouid = ?", (file_uid,)):
            raise invalid(f"Field 'fileUid': no uploaded file with ouid {file_uid!r}")
        type_id = fields.get("typeId")
        if not isinstance(type_id, (str, int)) or not self.store.tables[
            "DocumentTypeService"
        ].exists(str(type_id)):
            raise invalid(f"Field 'typeId': {type_id!r} is not a document type uid")
        subject = fields.get("subject")
        if not isinstance(subject, str) or not subject.strip():
            raise invalid(
                "Field 'subject' is obligatory and must be a non-empty string"
            )
        try:
            private = values.to_bool(fields.get("private")) or 0
        except values.ValueProblem as exc:
            raise invalid(f"Field 'private': {exc}") from None
        entity = next(e for e, k in ENTITY_IDS.items() if k == key)
        cur = self.store.execute(
            "INSERT INTO dossier (entity_id, object_uid, file_ouid, type_id, subject, description, private, created, user_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (
                entity,
                owner,
                file_uid,
                str(type_id),
                subject,
                fields.get("description"),
                private,
                int(time.time()),
            ),
        )
        return str(cur.lastrowid)

    def _dossier_args(self, args: Any) -> tuple[str, list]:
        if not isinstance(args, dict):
            raise invalid(
                "DossierService takes an object {objectEntityId, objectUid, restrictClass, limit, offset}"
            )
        try:
            entity = values.to_int(args.get("objectEntityId"))
        except values.ValueProblem:
            entity = None
        if entity not in ENTITY_IDS:
            raise invalid(
                f"objectEntityId must be one of {sorted(ENTITY_IDS)}, got {args.get('objectEntityId')!r}"
            )
        owner = args.get("objectUid")
        if not isinstance(owner, str) or not owner:
            raise invalid(f"objectUid must be a record uid string, got {owner!r}")
        classes = args.get("restrictClass")
        if classes is not None and (
            not isinstance(classes, list) or set(classes) - {"AttachedDocs"}
        ):
            raise invalid(
                f"restrictClass: the sandbox keeps only 'AttachedDocs' dossier items, got {classes!r}"
            )
        return "d.entity_id = ? AND d.object_uid = ?", [entity, owner]

    def dossier_list(
        self, session: SessionState, lang: str, args: Any = None, *_: Any
    ) -> list:
        where, params = self._dossier_args(args)
        try:
            limit = values.to_int(args.get("limit"))
            offset = values.to_int(args.get("offset")) or 0
        except values.ValueProblem as exc:
            raise invalid(f"DossierService limit and offset: {exc}") from None
        limit = 100 if limit is None else limit
        rows = self.store.all(
            "SELECT d.id, d.file_ouid, d.subject, d.type_id, d.description, d.private, d.created, d.user_id, "
            "f.name, f.mime, f.size, d.entity_id, d.object_uid FROM dossier d LEFT JOIN files f ON f.ouid = d.file_ouid "
            f"WHERE {where} ORDER BY d.id LIMIT ? OFFSET ?",
            (*params, max(0, min(limit, 1000)), max(0, offset)),
        )
        types = dict(self.store.all('SELECT uid, name FROM "DocumentTypeService"'))
        return [
            {
                "uid": str(r[0]),
                "class": "AttachedDocs",
                "id_rec": r[1],
                "subject": r[2],
                "typeId": r[3],
                "type": types.get(r[3]),
                "description": r[4],
                "private": bool(r[5]),
                "entryDateTime": values.format_epoch(r[6]),
                "userId": r[7],
                "fileName": r[8],
                "mimeType": r[9],
                "fileSize": r[10],
                "objectEntityId": r[11],
                "objectUid": r[12],
            }
            for r in rows
        ]

    def dossier_count(
        self, session: SessionState, lang: str, args: Any = None, *_: Any
    ) -> int:
        where, params = self._dossier_args(args)
        return self.store.one(f"SELECT COUNT(*) FROM dossier d WHERE {where}", params)[
            0
        ]


__all__ = [
    "LOGIN_AGAIN",
    "LOGIN_FIRST",
    "Dispatcher",
    "is_write",
    "short_method",
]
