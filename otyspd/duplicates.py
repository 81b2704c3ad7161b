"""Merged (deduplicated) candidates and their surviving records (manual 2.10).

When OTYS merges candidate A into candidate B, A is deleted and B is kept; a
later merge of B into C keeps C. ``CandidateService.retrieveDuplicateInfo``
tells, for any of A's identifiers (uid, internalId or personalNr), the merge
history and the record kept after all merges. The same history is readable as
the ``mergeHistory`` collection of a candidate.

- :func:`duplicate_info` asks about one identifier.
- :func:`surviving_ids` maps many ids (a column of a frame you keep elsewhere)
  to their surviving uids, one lookup per distinct id, batched.
- :func:`merge_map` does the same from a candidates frame read with the
  ``mergeHistory`` collection, without any call.
"""

from __future__ import annotations

import logging
import numbers
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import InvalidInput, NotFound, OwsError, ProtocolError

if TYPE_CHECKING:
    from .session import Session

__all__ = [
    "AmbiguousIdWarning",
    "DuplicateInfo",
    "duplicate_info",
    "merge_map",
    "surviving_ids",
]

log = logging.getLogger(__name__)

_METHOD = "CandidateService.retrieveDuplicateInfo"
_TZ = "Europe/Amsterdam"
#: The columns of a merge history, in the manual's order.
HISTORY_COLUMNS = (
    "mergeDateTime",
    "idSource",
    "oidSource",
    "personalNrSource",
    "idDestination",
    "oidDestination",
    "personalNrDestination",
)
_SOURCE_KINDS = ("oidSource", "idSource", "personalNrSource")
#: id_kind -> (its merge history source column, its DuplicateInfo attribute).
_KIND_COLUMNS = {
    "uid": ("oidSource", "new_uid"),
    "internalId": ("idSource", "new_internal_id"),
    "personalNr": ("personalNrSource", "new_personal_nr"),
}


class AmbiguousIdWarning(UserWarning):
    """An id was matched by the server as another kind of id than the caller said."""


_MAPPING_COLUMNS = (
    "id",
    "surviving_uid",
    "surviving_internal_id",
    "merged",
    "found",
    "chain_length",
)


@dataclass
class DuplicateInfo:
    """What the server knows about the merges of one candidate.

    Attributes:
        identifier: the identifier asked about.
        history: one row per merge, oldest first; ids are strings and
            ``mergeDateTime`` a Europe/Amsterdam datetime.
        new_uid: uid (ouid) of the record kept after all merges.
        new_internal_id: its internalId.
        new_personal_nr: its personalNr.
    """

    identifier: str
    history: pd.DataFrame = field(repr=False)
    new_uid: str | None = None
    new_internal_id: str | None = None
    new_personal_nr: str | None = None

    @property
    def merged(self) -> bool:
        """True when the candidate took part in at least one merge."""
        return not self.history.empty

    def __repr__(self) -> str:
        return (
            f"DuplicateInfo(identifier={self.identifier!r}, merges={len(self.history)}, "
            f"new_uid={self.new_uid!r}, new_internal_id={self.new_internal_id!r}, "
            f"new_personal_nr={self.new_personal_nr!r})"
        )


def duplicate_info(session: Session, identifier: Any) -> DuplicateInfo:
    """Ask the server for the merge history of one candidate.

    Args:
        identifier: the candidate's uid, internalId or personalNr (the server
            tries uid and internalId first, then personalNr).

    Raises:
        InvalidInput: an empty identifier (nothing was sent).
        NotFound: the server knows no candidate by that identifier.

    >>> info = session.duplicate_info("12345")
    >>> info.new_uid, len(info.history)
    """
    key = _identifier(identifier)
    result = session.call(_METHOD, key)
    return _parse_info(key, result)


def _identifier(value: Any) -> str:
    if (
        isinstance(value, bool)
        or not isinstance(value, (str, numbers.Integral))
        or not str(value).strip()
    ):
        raise InvalidInput(
            f"a candidate identifier must be a uid, internalId or personalNr, got {value!r}"
        )
    return str(value).strip()


def _parse_info(identifier: str, result: Any) -> DuplicateInfo:
    if result in (None, False, [], ""):
        raise NotFound(
            f"no candidate or merge record for {identifier!r}",
            method=f"Otys.Services.{_METHOD}",
        )
    if not isinstance(result, dict):
        raise ProtocolError(
            f"{_METHOD} did not answer an object",
            method=f"Otys.Services.{_METHOD}",
            body=result,
        )
    return DuplicateInfo(
        identifier=identifier,
        history=history_frame(result.get("mergeHistory")),
        new_uid=_text(result.get("newCandidateOuid")),
        new_internal_id=_text(result.get("newCandidateId")),
        new_personal_nr=_text(result.get("newCandidatePersonalNr")),
    )


def history_frame(history: Any) -> pd.DataFrame:
    """Turn one ``mergeHistory`` value (a map keyed by idSource, a list, or ``[]``) into rows.

    The frame has the manual's columns, ids as strings, ``mergeDateTime`` as a
    Europe/Amsterdam datetime, sorted oldest first.
    """
    entries = _entries(history)
    frame = pd.DataFrame(
        {
            column: pd.array([_text(e.get(column)) for e in entries], dtype="string")
            for column in HISTORY_COLUMNS[1:]
        }
    )
    frame.insert(
        0, "mergeDateTime", _datetimes([e.get("mergeDateTime") for e in entries])
    )
    frame = frame.sort_values("mergeDateTime", kind="stable", na_position="first")
    return frame.reset_index(drop=True)


def _entries(history: Any) -> list[dict]:
    if history is None or (isinstance(history, float) and history != history):
        return []
    if isinstance(history, dict):
        history = list(history.values())
    if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
        raise ProtocolError(
            "mergeHistory is not a collection of merge records", body=history
        )
    return history


def _datetimes(values: list[Any]) -> pd.Series:
    """Server-local ``YYYY-MM-DD HH:MM:SS`` to tz-aware datetimes; zero dates become NaT."""
    text = pd.Series(
        [None if v in (None, "") else str(v) for v in values], dtype="object"
    )
    text = text.where(~text.fillna("").str.startswith("0000-00-00"), None)
    parsed = pd.to_datetime(text, errors="coerce", format="mixed")
    if getattr(parsed.dt, "tz", None) is None:
        # Wall-clock times of the repeated autumn hour are read as winter time.
        return parsed.dt.tz_localize(_TZ, ambiguous=False, nonexistent="shift_forward")
    return parsed.dt.tz_convert(_TZ)


# ---- many ids ------------------------------------------------------------------------


def surviving_ids(
    session: Session | None,
    ids: Any,
    *,
    history: Any = None,
    id_kind: str | None = None,
) -> pd.DataFrame:
    """Map candidate ids that may have been merged away to the records that survive.

    Each distinct id is looked up once with ``retrieveDuplicateInfo``, all in
    ``MultiService`` batches. Chains are followed (A merged into B, B into C:
    A maps to C) and a cycle in the history stops the walk instead of looping.

    Args:
        session: an open Session (None to use only ``history``).
        ids: a list, Series, Index or frame column of uids, internalIds or personalNrs.
        history: optionally a candidates frame read with ``mergeHistory`` (see
            :func:`merge_map`); ids it explains (merged-away ids and the uids of
            its own rows) need no lookup.
        id_kind: what the ids are, when known: ``"uid"``, ``"internalId"`` or
            ``"personalNr"``. The server tries uid, then internalId, then
            personalNr, so a personalNr equal to another candidate's internalId
            finds that other candidate. With ``id_kind``, an id the server
            matched as another kind is not taken: its row has ``found`` False,
            and a warning names it.

    Returns:
        A DataFrame with one row per input id, in input order and with the input
        Series' index:

        - ``id``: the id as given (string);
        - ``surviving_uid``: uid of the record kept after all merges; the id
          itself when it was not merged, and kept as given when unknown;
        - ``surviving_internal_id``: its internalId, when the server said;
        - ``merged``: whether the id was merged into another record;
        - ``found``: whether the server (or ``history``) knew the id;
        - ``chain_length``: the number of merges between the id and the survivor.

        Missing ids (None, NaN) give a row with ``found`` False.

    >>> ids = surviving_ids(session, old_export["candidate_uid"])
    >>> old_export["candidate_uid"] = ids["surviving_uid"]
    """
    if id_kind is not None and id_kind not in _KIND_COLUMNS:
        raise InvalidInput(
            f"id_kind must be one of {', '.join(map(repr, _KIND_COLUMNS))}, got {id_kind!r}"
        )
    series = _as_series(ids)
    keys = {k for k in series if k is not None}

    resolved: dict[str, dict] = {}
    # A history frame's index holds uids, and merge_map matches any kind of id.
    if history is not None and id_kind in (None, "uid"):
        known = merge_map(history)
        survivors = {str(uid) for uid in history.index}
        for key in keys:
            if key in known.index:
                resolved[key] = known.loc[key].to_dict()
            elif key in survivors:
                resolved[key] = _itself(key)
    remaining = sorted(keys - set(resolved))
    if remaining and session is not None:
        resolved.update(_lookup(session, remaining, id_kind))

    rows = [
        _row(key, resolved.get(key)) if key is not None else _row("", None)
        for key in series
    ]
    frame = pd.DataFrame(rows, columns=list(_MAPPING_COLUMNS), index=series.index)
    frame["id"] = pd.array(
        [k if k is not None else pd.NA for k in series], dtype="string"
    )
    return _typed(frame)


def _as_series(ids: Any) -> pd.Series:
    if isinstance(ids, pd.DataFrame):
        raise InvalidInput("pass one column of ids (df['col']), not a whole DataFrame")
    if isinstance(ids, (str, bytes)) or not isinstance(
        ids, (pd.Series, pd.Index, Iterable)
    ):
        raise InvalidInput(
            f"ids must be a list, Series or column of ids, got {type(ids).__name__}"
        )
    series = ids if isinstance(ids, pd.Series) else pd.Series(list(ids), dtype="object")
    # A float column of whole numbers (internalIds after a CSV round trip) is fine.
    values = [int(v) if isinstance(v, float) and v.is_integer() else v for v in series]
    problems = [
        f"position {i}: {v!r}"
        for i, v in enumerate(values)
        if isinstance(v, bool)
        or not (_missing(v) or isinstance(v, (str, numbers.Integral)))
    ]
    if problems:
        raise InvalidInput("candidate ids must be strings or whole numbers:", problems)
    return pd.Series(
        [None if _missing(v) or not str(v).strip() else str(v).strip() for v in values],
        index=series.index,
        dtype="object",
    )


def _lookup(
    session: Session, keys: list[str], id_kind: str | None = None
) -> dict[str, dict]:
    """One retrieveDuplicateInfo per key, batched; map each key to its resolution."""
    results = session.multi([(_METHOD, [key]) for key in keys], idempotent=True)
    resolved: dict[str, dict] = {}
    other_kind: list[str] = []
    for key, result in zip(keys, results, strict=True):
        if not result.ok:
            if isinstance(result.error, NotFound) or _says_not_found(result.error):
                continue
            raise result.error
        try:
            info = _parse_info(key, result.data)
        except NotFound:
            continue
        if id_kind is not None and not _matched_as(key, info, id_kind):
            other_kind.append(key)
            continue
        resolved[key] = _resolve(key, info, id_kind)
    if other_kind:
        warnings.warn(
            f"{len(other_kind)} id(s) given as {id_kind} were matched by the server as "
            f"another kind of id (another candidate's uid or internalId) and were not "
            f"taken: {', '.join(other_kind[:10])}",
            AmbiguousIdWarning,
            stacklevel=3,
        )
    log.debug("retrieveDuplicateInfo: %d ids, %d known", len(keys), len(resolved))
    return resolved


def _matched_as(key: str, info: DuplicateInfo, id_kind: str) -> bool:
    """Whether the server's answer for ``key`` is about a candidate with that id of that kind."""
    source, new = _KIND_COLUMNS[id_kind]
    # Asked about a merged record, the key is a source of that kind; else the survivor.
    sources = {_text(v) for v in info.history[source]}
    return key in sources or getattr(info, new) == key


def _says_not_found(error: Any) -> bool:
    return isinstance(error, OwsError) and "not found" in error.ows_message.lower()


def _resolve(key: str, info: DuplicateInfo, id_kind: str | None = None) -> dict:
    """Follow ``key`` through the merge history of one answer."""
    kinds = (_KIND_COLUMNS[id_kind][0],) if id_kind else _SOURCE_KINDS
    end, steps = _follow(key, info.history, kinds)
    if steps == 0:
        # The key is no source in the history: it survived, or its merges predate
        # the full history (March 2024); the server's "new" ids then decide.
        own_ids = {info.new_uid, info.new_internal_id, info.new_personal_nr}
        merged = info.merged and info.new_uid is not None and key not in own_ids
        return {
            "surviving_uid": info.new_uid or key,
            "surviving_internal_id": info.new_internal_id,
            "merged": merged,
            "found": True,
            "chain_length": len(info.history) if merged else 0,
        }
    return {
        "surviving_uid": info.new_uid or end["uid"] or key,
        "surviving_internal_id": info.new_internal_id or end["internal_id"],
        "merged": True,
        "found": True,
        "chain_length": steps,
    }


def _follow(
    key: str, history: pd.DataFrame, kinds: tuple[str, ...] = _SOURCE_KINDS
) -> tuple[dict, int]:
    """Walk source -> destination edges from ``key``; return the end and the step count.

    ``key`` is matched as a uid first, then as an internalId, then as a
    personalNr, the order the server uses (or only as the source ``kinds``
    given); the walk then follows destination uids and internalIds only.
    """
    index: dict[str, dict[str, int]] = {c: {} for c in _SOURCE_KINDS}
    for i, row in enumerate(history.itertuples(index=False)):
        for column in _SOURCE_KINDS:
            value = getattr(row, column)
            if not _missing(value):
                index[column].setdefault(str(value), i)

    current: dict = {"uid": None, "internal_id": None}
    seen: set[int] = set()
    step = next((index[c][key] for c in kinds if key in index[c]), None)
    while step is not None and step not in seen:
        seen.add(step)
        row = history.iloc[step]
        current = {
            "uid": _text(row["oidDestination"]),
            "internal_id": _text(row["idDestination"]),
        }
        step = index["oidSource"].get(current["uid"] or "")
        if step is None:
            step = index["idSource"].get(current["internal_id"] or "")
    if step is not None:
        log.warning(
            "merge history of %s has a cycle; stopped after %d merges", key, len(seen)
        )
    return current, len(seen)


# ---- from a candidates frame ----------------------------------------------------------


def merge_map(candidates: Any) -> pd.DataFrame:
    """Build the id mapping from candidates read with the ``mergeHistory`` collection.

    Every record in the frame survives (it was read, so it exists); each source
    id in its history (uid, internalId and personalNr) maps to it. No call is made.

    Args:
        candidates: a frame indexed by uid with a ``mergeHistory`` column, or that
            column alone (a Series indexed by uid).

    Returns:
        A DataFrame indexed by the merged-away id (index name ``id``) with the columns
        of :func:`surviving_ids` (``surviving_internal_id`` is filled when the
        history names it).

    >>> cands = session.read_list("Candidate", ["uid", "internalId", "mergeHistory"])
    >>> merge_map(cands).loc["A123", "surviving_uid"]
    """
    if isinstance(candidates, pd.DataFrame):
        if "mergeHistory" not in candidates.columns:
            raise InvalidInput(
                "the frame has no 'mergeHistory' column; read it with that field"
            )
        column = candidates["mergeHistory"]
    elif isinstance(candidates, pd.Series):
        column = candidates
    else:
        raise InvalidInput(
            "merge_map takes a candidates frame or its mergeHistory column"
        )

    # A key may be one record's internalId and another's personalNr: uid and
    # internalId win, as on the server.
    rows: dict[str, dict] = {}
    rank: dict[str, int] = {}
    for survivor, value in column.items():
        survivor_uid = str(survivor)
        history = history_frame(value)
        for priority, column_name in enumerate(_SOURCE_KINDS):
            for source in history[column_name]:
                if _missing(source) or rank.get(str(source), 99) <= priority:
                    continue
                end, steps = _follow(str(source), history)
                internal = (
                    end["internal_id"] if end["uid"] in (None, survivor_uid) else None
                )
                rank[str(source)] = priority
                rows[str(source)] = {
                    "surviving_uid": survivor_uid,
                    "surviving_internal_id": internal,
                    "merged": True,
                    "found": True,
                    "chain_length": max(steps, 1),
                }
    frame = pd.DataFrame.from_dict(
        rows, orient="index", columns=list(_MAPPING_COLUMNS[1:])
    )
    frame.insert(0, "id", pd.array(list(rows), dtype="string"))
    frame.index = pd.Index(list(rows), name="id", dtype="string")
    return _typed(frame)


# ---- helpers -------------------------------------------------------------------------


def _row(key: str, resolution: dict | None) -> dict:
    if resolution is None:
        return {
            "id": key,
            "surviving_uid": key or None,
            "surviving_internal_id": None,
            "merged": False,
            "found": False,
            "chain_length": 0,
        }
    return {"id": key, **{c: resolution.get(c) for c in _MAPPING_COLUMNS[1:]}}


def _itself(uid: str) -> dict:
    return {
        "surviving_uid": uid,
        "surviving_internal_id": None,
        "merged": False,
        "found": True,
        "chain_length": 0,
    }


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("id", "surviving_uid", "surviving_internal_id"):
        frame[column] = pd.array(
            [None if _missing(v) else str(v) for v in frame[column]], dtype="string"
        )
    frame["merged"] = frame["merged"].astype("boolean")
    frame["found"] = frame["found"].astype("boolean")
    frame["chain_length"] = frame["chain_length"].astype("Int64")
    return frame


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and value != value


def _text(value: Any) -> str | None:
    if _missing(value) or value in ("", [], {}):
        return None
    return str(value)
