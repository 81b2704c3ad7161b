"""Reading whole lists: page planning, batching, drift checks, progress, export.

:func:`read_list` pages through ``getListEx`` and returns one typed frame. It
loses no row and presents no partial result as complete:

- The page size is capped at what the server serves (200, or 1000 with
  ``excludeLimitCheck`` for bigger pages) and the real size is learnt from the
  first page; the read advances by the rows received, never by the size asked.
- Pages are sorted on the caller's order plus ``uid`` ascending, so the order
  is total. Each page after the first starts one row early, on the last row
  already read (the anchor). When the anchor is not where it should be,
  records were removed before the read position; the rows that slid back
  are fetched again from just before, so nothing is skipped. Repeated uids
  are dropped and counted. The total count at the start and at the end are
  compared; any movement gives a :class:`DriftWarning` with the numbers
  (:class:`~otyspd.errors.DriftError` with ``strict=True``).
- After the first page gives the total, the remaining pages go out ``batch``
  at a time in one ``MultiService.execute`` request, fetched by a background
  thread while the previous batch is turned into a frame.
- Every request of the read (the first page, the batches, the re-read that
  recovers rows after deletions) that fails is tried again (``page_retries``
  times, on top of the transport's own retries). If it still fails,
  :class:`~otyspd.errors.IncompleteRead` carries the rows read so far
  (``partial``), the offset to resume from (``resume_offset``, pass it as
  ``offset=``) and the expected total. A request the server refuses (bad
  input, a lost login) is not retried and raises the server's own error.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import queue
import secrets
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import options as opt
from . import query
from .errors import (
    AccessDenied,
    BadRequest,
    DriftError,
    IncompleteRead,
    InvalidInput,
    NotFound,
    OtysError,
    OwsError,
    ProtocolError,
    TransportError,
)
from .frames import concat_frames, known_field_defs, records_to_frame
from .progress import progress_bar
from .schema import FIELD_TYPES, short_service

__all__ = [
    "DriftWarning",
    "ReadStats",
    "export",
    "iter_pages",
    "read_detail",
    "read_list",
    "read_list_last",
]

log = logging.getLogger(__name__)

#: Rows per list request the server serves, without and with ``excludeLimitCheck``.
SERVER_PAGE = 200
EXCLUDED_PAGE = 1000
#: Rows asked per page by default: the largest page the server serves. OTYS's
#: own clients ask up to 1000 with ``excludeLimitCheck``; a server that serves
#: fewer is followed, since the real page size is learnt from the first page.
DEFAULT_PAGE = EXCLUDED_PAGE
#: Pages per MultiService request after the first page (about 5,000 rows a request
#: at the default page size, which keeps each answer well inside the timeout).
DEFAULT_BATCH = 5
#: Rows converted at once by read_list (a few pages: fewer, larger conversions).
CONVERT_ROWS = 2000
#: Recently read uids kept to find the read position again after deletions.
_RECENT = 64


class DriftWarning(UserWarning):
    """Records were added, changed or removed while a list was being paged."""


@dataclass
class ReadStats:
    """What happened during one paged read (also in the drift warning)."""

    total_start: int | None = None
    total_end: int | None = None
    rows: int = 0
    pages: int = 0
    requests: int = 0
    page_size: int = 0
    duplicates: int = 0
    repaired: int = 0
    gaps: int = 0
    retries: int = 0

    def moved(self) -> bool:
        return bool(
            self.duplicates
            or self.repaired
            or self.gaps
            or self.total_start != self.total_end
        )

    def describe(self) -> str:
        return (
            f"total {self.total_start} at the start and {self.total_end} at the end; "
            f"{self.rows} unique rows read, {self.duplicates} repeated uid(s) dropped, "
            f"{self.repaired} row(s) recovered after records moved, {self.gaps} place(s) "
            "where rows may have been missed"
        )


@dataclass
class _Plan:
    """Everything a read needs, checked before the first request."""

    service: str
    paths: list[str]
    what: dict
    condition: dict | None
    sort: dict
    types: dict[str, str]
    field_defs: dict | None
    label_fields: list[str]
    page_size: int
    batch: int
    offset: int
    limit: int | None
    strict: bool
    page_retries: int
    max_pages: int | None
    progress: bool | None
    language: str | None


_READ_OPTIONS = {
    "page_size",
    "batch",
    "offset",
    "strict",
    "types",
    "page_retries",
    "max_pages",
}


def _plan(
    session: Any,
    service: str,
    what: Any,
    condition: Any,
    *,
    sort: Any,
    limit: int | None,
    labels: Any,
    progress: bool | None,
    options: Mapping[str, Any],
) -> _Plan:
    """Check every argument and decide the requests, before anything is sent."""
    unknown = set(options) - _READ_OPTIONS
    if unknown:
        raise InvalidInput(
            f"unknown option(s) {', '.join(sorted(unknown))}; known are "
            f"{', '.join(sorted(_READ_OPTIONS))}"
        )
    service = short_service(service)
    defs = known_field_defs(session, service)
    paths = query.normalize_what(what, defs)
    cond = labels_in_condition(
        session, service, query.compile_condition(condition, defs), defs
    )
    order = query.compile_sort(sort, defs)

    # at least 2: each page after the first starts on the last row already read
    page_size = _whole(options.get("page_size", DEFAULT_PAGE), "page_size", 2)
    batch = _whole(options.get("batch", DEFAULT_BATCH), "batch", 1)
    offset = _whole(options.get("offset", 0), "offset", 0)
    page_retries = _whole(options.get("page_retries", 3), "page_retries", 0)
    max_pages = options.get("max_pages")
    if max_pages is not None:
        max_pages = _whole(max_pages, "max_pages", 1)
    if limit is not None:
        limit = _whole(limit, "limit", 0)
    types = dict(options.get("types") or {})
    bad_types = {k: v for k, v in types.items() if v not in FIELD_TYPES}
    if bad_types:
        raise InvalidInput(
            f"types: unknown field types {bad_types}; use {', '.join(FIELD_TYPES)}"
        )

    return _Plan(
        service=service,
        paths=paths,
        what=query.what_from_paths(paths),
        condition=cond,
        sort=order,
        types=types,
        field_defs=defs,
        label_fields=_label_fields(paths, labels, defs, types),
        page_size=min(page_size, EXCLUDED_PAGE),
        batch=batch,
        offset=offset,
        limit=limit,
        strict=bool(options.get("strict", False)),
        page_retries=page_retries,
        max_pages=max_pages,
        progress=progress,
        language=getattr(session, "language_code", None),
    )


def _whole(value: Any, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidInput(f"{name} must be a whole number >= {least}, got {value!r}")
    return value


def _is_option_field(field: str, defs: dict | None) -> bool:
    """A field that holds one option id: declared so, or well known when undeclared."""
    if defs:
        fdef = defs.get(field)
        return bool(getattr(fdef, "has_options", False)) and getattr(
            fdef, "type", "string"
        ) not in ("collection", "container")
    return field in opt.WELL_KNOWN_OPTION_FIELDS


def _label_params(cond: Any, defs: dict | None) -> set[str]:
    """The option fields that a condition compares with text (perhaps a label)."""
    if not isinstance(cond, dict):
        return set()
    if cond.get("type") != "COND":
        found: set[str] = set()
        for item in cond.get("items") or []:
            found |= _label_params(item, defs)
        return found
    param = cond.get("param")
    values = param if isinstance(param, list) else [param]
    texts = any(isinstance(v, str) and v for v in values)
    if (
        cond.get("op") in ("EQ", "NE")
        and texts
        and _is_option_field(cond["field"], defs)
    ):
        return {cond["field"]}
    return set()


def _as_id(option_id: str, field: str, defs: dict | None) -> Any:
    kind = getattr((defs or {}).get(field), "type", None)
    numeric = option_id.isdigit() and (
        option_id == "0" or not option_id.startswith("0")
    )
    if kind == "integer" or (kind is None and numeric):
        return int(option_id)
    return option_id


def labels_in_condition(
    session: Any, service: str, cond: Any, defs: dict | None
) -> Any:
    """Let a condition name an option by its label, as the frame shows it.

    ``F("statusId") == "Actief"`` becomes the id of "Actief"; an id given as
    text is kept. A label that is no option of the field, or the label of
    several, is refused before any list call (one option-list call is made,
    and cached, to know the labels).
    """
    fields = _label_params(cond, defs)
    if not fields:
        return cond
    maps = opt.get_options(session, service, sorted(fields))

    def rewrite(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if node.get("type") != "COND":
            return {**node, "items": [rewrite(i) for i in node.get("items") or []]}
        field = node.get("field")
        if field not in fields:
            return node
        param = node.get("param")
        values = param if isinstance(param, list) else [param]
        texts = [v for v in values if isinstance(v, str) and v]
        ids = opt.map_labels(maps[field], texts, column=f"condition on {field}")
        mapped = [_as_id(ids[v], field, defs) if v in ids else v for v in values]
        return {**node, "param": mapped if isinstance(param, list) else mapped[0]}

    return rewrite(cond)


def _label_fields(
    paths: list[str], labels: Any, defs: dict | None, types: dict
) -> list[str]:
    """The columns to show as labels: declared option fields, or the ones named."""
    if labels is False or labels is None:
        return []
    columns = [p for p in paths if p != "uid"]
    if labels is True:
        return [
            p
            for p in columns
            if _is_option_field(p, defs)
            and types.get(p) not in ("collection", "container")
        ]
    named = [labels] if isinstance(labels, str) else list(labels)
    missing = [n for n in named if n not in columns]
    if missing:
        raise InvalidInput(
            f"labels: {missing} are not among the columns asked ({columns})"
        )
    return named


# ---- the fetching side ----------------------------------------------------------


def _page_call(
    plan: _Plan, offset: int, limit: int, *, count: bool = True
) -> tuple[str, list]:
    args: dict[str, Any] = {
        "what": plan.what,
        "sort": plan.sort,
        "limit": limit,
        "offset": offset,
    }
    if count:
        args["getTotalCount"] = 1
    if plan.condition is not None:
        args["condition"] = plan.condition
    if limit > SERVER_PAGE:
        args["excludeLimitCheck"] = True
    return (f"{plan.service}.getListEx", [args])


def _parse_page(data: Any, offset: int) -> tuple[list, int | None]:
    """The records and total of a getListEx answer; a malformed one is a ProtocolError.

    A record without a uid makes the page malformed too, so that it is retried
    like any other bad answer.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("listOutput"), list):
        raise ProtocolError(
            f"getListEx at offset {offset} answered {data!r:.120}, not a list of records"
        )
    rows = data["listOutput"]
    total = data.get("totalCount")
    if isinstance(total, str) and total.isdigit():
        total = int(total)
    if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
        raise ProtocolError(f"getListEx at offset {offset}: totalCount is {total!r}")
    if any(not isinstance(r, Mapping) for r in rows):
        raise ProtocolError(f"getListEx at offset {offset}: a record is not an object")
    for row in rows:
        _uid(row)
    return rows, total


def _retryable(error: BaseException) -> bool:
    """A page failure worth another try (not a refused request or a lost login)."""
    if isinstance(error, (BadRequest, AccessDenied, NotFound, InvalidInput)):
        return False
    return isinstance(error, (TransportError, OwsError))


class _PageFailed(Exception):
    """A request of the read kept failing; ``position`` is where to resume.

    ``repeats`` is set when the resume offset was moved back to before rows
    already read (records were removed while reading), so resuming may repeat
    some of them.
    """

    def __init__(
        self, error: BaseException, position: int, *, repeats: bool = False
    ) -> None:
        self.error = error
        self.position = position
        self.repeats = repeats


class _Pager:
    """Fetches pages in order and hands over only new rows, in server order.

    Runs in a background thread; talks to the consumer through a small queue.
    """

    def __init__(self, session: Any, plan: _Plan, missing_options: list[str]) -> None:
        self.session = session
        self.plan = plan
        self.missing_options = missing_options
        self.stats = ReadStats()
        self.seen: set[str] = set()
        self.recent: deque[str] = deque(maxlen=_RECENT)
        self.position = plan.offset
        self.taken = 0
        self.bound = max(plan.max_pages or 1, 1)
        self.out: queue.Queue = queue.Queue(maxsize=4)
        self.stop = threading.Event()

    # -- thread entry ------------------------------------------------------------

    def run(self) -> None:
        try:
            self._read()
            self._put(("done", self.stats))
        except _PageFailed as failed:
            self._put(("failed", failed))
        except (OtysError, ValueError) as exc:
            # a failure outside the retried requests still keeps the rows read so far
            if _retryable(exc):
                self._put(("failed", _PageFailed(exc, self.position)))
            else:
                self._put(("error", exc))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(("error", exc))

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # -- the read ------------------------------------------------------------------

    def _read(self) -> None:
        plan = self.plan
        asked = plan.page_size
        first = self._first_page(asked)
        rows, total = first
        self.stats.total_start = self.stats.total_end = total
        self.stats.page_size = asked
        if (
            total is not None
            and len(rows) < asked
            and self.position + len(rows) < total
        ):
            # the server served fewer rows than asked: that is its real page size
            self.stats.page_size = max(len(rows), 2)
        self._accept(rows, anchored=False, offset=plan.offset)
        if not rows:
            return

        size = self.stats.page_size
        self.bound = plan.max_pages or self._page_bound(total, size)
        while not self.stop.is_set() and not self._finished():
            self._fetch(self._plan_batch(size), size)

    def _page_bound(self, total: int | None, size: int) -> int:
        # a hard stop against a server that never runs out of rows
        expected = (total or 0) // max(size - 1, 1) + 1
        return 2 * expected + 20

    def _finished(self) -> bool:
        plan = self.plan
        if plan.limit is not None and self.taken >= plan.limit:
            return True
        total = self.stats.total_end
        return total is not None and self.position >= total

    def _plan_batch(self, size: int) -> list[int]:
        # each page starts on the last row of the one before (the anchor)
        total = self.stats.total_end or 0
        start = self.position - 1
        offsets = []
        for k in range(self.plan.batch):
            off = start + k * (size - 1)
            if k and off + 1 >= total:
                break
            offsets.append(off)
        return offsets

    def _retrying(
        self, request: Any, what: str, resume: int, *, repeats: bool = False
    ) -> Any:
        """``request()``, tried again ``page_retries`` times when it fails retryably.

        Still failing, it raises :class:`_PageFailed` with ``resume`` as the
        offset to resume from; a refusal is raised as it is.
        """
        attempt = 0
        while True:
            try:
                return request()
            except (OtysError, ValueError) as exc:
                if not _retryable(exc):
                    raise
                if attempt >= self.plan.page_retries or self.stop.is_set():
                    raise _PageFailed(exc, resume, repeats=repeats) from exc
                attempt += 1
                self.stats.retries += 1
                log.warning("%s failed (%s); trying again (%d)", what, exc, attempt)
                time.sleep(min(0.2 * attempt, 1.0))

    def _first_page(self, asked: int) -> tuple[list, int | None]:
        plan = self.plan
        calls: dict[str, Any] = {"page": _page_call(plan, plan.offset, asked)}
        if self.missing_options:
            calls["options"] = (
                f"{plan.service}.getOptionLists",
                [self.missing_options],
            )

        def request() -> tuple[tuple[list, int | None], dict | None]:
            results = self.session.multi(calls)
            self.stats.requests += 1
            page = _parse_page(results["page"].unwrap(), plan.offset)
            lists = None
            if "options" in calls:
                lists = opt.pick_lists(
                    results["options"].unwrap(), self.missing_options
                )
            return page, lists

        # nothing read yet, but a failure still tells where to resume
        page, lists = self._retrying(request, "the first page", self.position)
        if lists is not None:
            opt.store_options(self.session, plan.service, lists)
        return page

    def _fetch(self, offsets: list[int], size: int) -> None:
        """Fetch one batch of pages; accept them in order until one fails or runs short."""
        plan = self.plan
        attempt = 0
        while True:
            # the count costs the server a query: ask it once per batch, on the last page
            calls = [
                _page_call(plan, off, size, count=off == offsets[-1]) for off in offsets
            ]
            try:
                results = self.session.multi(calls)
                self.stats.requests += 1
                error = None
            except (OtysError, ValueError) as exc:
                results, error = [], exc
            for off, result in zip(offsets, results, strict=False):
                try:
                    rows, total = _parse_page(result.unwrap(), off)
                except (OtysError, ValueError) as exc:
                    error = exc
                    break
                attempt = 0
                if total is not None:
                    self.stats.total_end = total
                self._accept(rows, anchored=off < self.position, offset=off)
                if self._finished() or len(rows) <= 1 or len(rows) < size:
                    # a short page ends the batch: later offsets were planned on a full one
                    return
            if error is None:
                return
            if not _retryable(error) or attempt >= plan.page_retries:
                raise _PageFailed(error, self.position)
            attempt += 1
            self.stats.retries += 1
            log.warning(
                "page at offset %d failed (%s); trying again (%d)",
                self.position,
                error,
                attempt,
            )
            time.sleep(min(0.2 * attempt, 1.0))
            offsets = self._plan_batch(size)

    def _accept(self, rows: list, *, anchored: bool, offset: int) -> None:
        """Take a page's new rows; recover rows that slid back when records were removed."""
        if self.stats.pages >= self.bound:
            raise _PageFailed(
                ProtocolError(
                    f"stopped after {self.stats.pages} pages, the most that "
                    f"{self.stats.total_end} records need; the server keeps sending rows"
                ),
                self.position,
            )
        uids = [_uid(r) for r in rows]
        if (
            anchored
            and uids
            and self.recent
            and uids[0] != self.recent[-1]
            and uids[0] not in self.seen
        ):
            # the anchor is not first: records before it were removed, rows slid back
            self._recover(offset, uids[0])
        # the position moves only once the page is taken, so a failure above
        # resumes before it
        self.stats.pages += 1
        self.position = offset + len(rows)
        if not rows:
            return
        fresh = []
        for uid, row in zip(uids, rows, strict=True):
            if uid in self.seen:
                if not (anchored and uid == uids[0]):
                    self.stats.duplicates += 1
                continue
            self.seen.add(uid)
            self.recent.append(uid)
            fresh.append(row)
        self._hand_over(fresh)

    def _recover(self, offset: int, first: str) -> None:
        """Read the rows around ``offset`` again; keep the unseen ones before ``first``.

        The window reaches past the page's start, because the data may have
        moved again since the page was served.
        """
        size = self.stats.page_size
        start = max(0, offset - size // 2)
        args = _page_call(self.plan, start, size)

        def request() -> tuple[list, int | None]:
            answer = self.session.call(args[0], *args[1])
            self.stats.requests += 1
            return _parse_page(answer, start)

        # Rows that slid back lie somewhere before ``offset``: if this re-read
        # keeps failing, resuming from the window's start misses none of them
        # (and may repeat some rows already read).
        resume = min(start, self.position)
        rows, total = self._retrying(
            request,
            f"the re-read at offset {start}",
            resume,
            repeats=resume < self.position,
        )
        if total is not None:
            self.stats.total_end = total
        uids = [_uid(r) for r in rows]
        # continue after the latest row already read that is still there
        where = {u: i for i, u in enumerate(uids)}
        last = next((where[u] for u in reversed(self.recent) if u in where), None)
        if last is None:
            self.stats.gaps += 1
            return
        fresh = []
        for uid, row in zip(uids[last + 1 :], rows[last + 1 :], strict=True):
            if uid == first:
                break
            if uid not in self.seen:
                self.seen.add(uid)
                self.recent.append(uid)
                fresh.append(row)
        else:
            # the page's first row was not reached: rows beyond the window may be missing
            self.stats.gaps += 1
        self.stats.repaired += len(fresh)
        self._hand_over(fresh)

    def _hand_over(self, rows: list) -> None:
        limit = self.plan.limit
        if limit is not None:
            rows = rows[: max(limit - self.taken, 0)]
        self.taken += len(rows)
        self.stats.rows += len(rows)
        if rows:
            self._put(("rows", rows, self.position))


def _uid(record: Mapping) -> str:
    uid = record.get("uid")
    if uid is None or uid == "":
        raise ProtocolError(
            "a record arrived without a uid; pages cannot be checked for drift"
        )
    return uid if isinstance(uid, str) else str(uid)


# ---- the converting side ----------------------------------------------------------


class _Reader:
    """Runs a :class:`_Pager` in a thread and turns its rows into frames."""

    def __init__(
        self,
        session: Any,
        plan: _Plan,
        *,
        keeps_rows: bool = True,
        export_to: Path | None = None,
    ) -> None:
        self.session = session
        self.plan = plan
        # False when each frame is handed over and forgotten (iter_pages, export)
        self.keeps_rows = keeps_rows
        # the file an export writes: a failure there cannot be resumed
        self.export_to = export_to
        _, missing = opt.cached_options(session, plan.service, plan.label_fields)
        self.pager = _Pager(session, plan, missing)
        self.locked: dict[str, str] = {}
        self.frames: list[pd.DataFrame] = []

    def chunks(self, rows_per_chunk: int) -> Iterator[pd.DataFrame]:
        """Yield typed frames of about ``rows_per_chunk`` rows, in server order."""
        # the pager thread runs in the caller's context: the content language goes along
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run, args=(self.pager.run,), name="otyspd-pager", daemon=True
        )
        thread.start()
        bar = progress_bar(self.plan.progress, total=None, desc=f"{self.plan.service}")
        buffer: list = []
        try:
            while True:
                item = self.pager.out.get()
                kind = item[0]
                if kind == "rows":
                    buffer.extend(item[1])
                    self._set_total(bar)
                    bar.update(len(item[1]))
                    if len(buffer) >= rows_per_chunk:
                        yield self._convert(buffer)
                        buffer = []
                    continue
                if buffer:
                    yield self._convert(buffer)
                    buffer = []
                if kind == "done":
                    self._check_drift()
                    return
                if kind == "failed":
                    raise self._incomplete(item[1])
                raise item[1]
        finally:
            self.pager.stop.set()
            bar.close()
            thread.join(timeout=5)

    def _set_total(self, bar: Any) -> None:
        total = self.pager.stats.total_end
        if total is not None and getattr(bar, "total", None) is None:
            want = total - self.plan.offset
            if self.plan.limit is not None:
                want = min(want, self.plan.limit)
            bar.total = max(want, 0)

    def _convert(self, rows: list) -> pd.DataFrame:
        plan = self.plan
        labels = {}
        if plan.label_fields:
            have, _ = opt.cached_options(self.session, plan.service, plan.label_fields)
            labels = {f: have[f] for f in plan.label_fields if f in have}
        frame = records_to_frame(
            rows,
            plan.paths,
            types={**self.locked, **plan.types},
            field_defs=plan.field_defs,
            option_labels=labels,
            service=plan.service,
            language=plan.language,
        )
        # later pages keep the types the first filled values showed
        for col, ftype in frame.attrs["otyspd"]["types"].items():
            if (
                col not in self.locked
                and col not in labels
                and frame[col].notna().any()
            ):
                self.locked[col] = ftype
        self.frames.append(frame)
        return frame

    def _incomplete(self, failed: _PageFailed) -> IncompleteRead:
        stats = self.pager.stats
        error, position = failed.error, failed.position
        message = (
            f"the read of {self.plan.service} stopped at offset {position} after "
            f"{stats.rows} rows (the server reported {stats.total_end}): {error}. "
        )
        if self.export_to is not None:
            message += (
                f"Nothing was written to {str(self.export_to)!r} (the temporary file "
                "was removed); run the export again"
            )
            exc = IncompleteRead(message, expected=stats.total_end)
            exc.__cause__ = error
            return exc
        if self.keeps_rows:
            message += (
                f"The rows read so far are in .partial; resume with offset={position}"
            )
        else:
            message += (
                f"The {stats.rows} rows read before this were already handed over "
                f"page by page (so .partial is empty); resume with offset={position}"
            )
        if failed.repeats:
            message += (
                " (records were removed while reading, so the resumed read starts "
                "a little early and may repeat rows already read: drop repeated uids)"
            )
        exc = IncompleteRead(
            message,
            partial=self.frame(),
            resume_offset=position,
            expected=stats.total_end,
        )
        exc.__cause__ = error
        return exc

    def frame(self) -> pd.DataFrame:
        """Every row read so far as one frame (an empty, typed one when none)."""
        if self.frames:
            return concat_frames(self.frames)
        return records_to_frame(
            [], self.plan.paths, types=self.plan.types, service=self.plan.service
        )

    def _check_drift(self) -> None:
        stats = self.pager.stats
        expected_rows = None
        if stats.total_end is not None:
            expected_rows = max(stats.total_end - self.plan.offset, 0)
            if self.plan.limit is not None:
                expected_rows = min(expected_rows, self.plan.limit)
        short = expected_rows is not None and stats.rows != expected_rows
        if not stats.moved() and not short:
            return
        message = (
            f"{self.plan.service}: records moved while reading: {stats.describe()}"
        )
        if short:
            message += f"; expected {expected_rows} rows from the final total"
        if self.plan.strict:
            raise DriftError(
                message, frame=concat_frames(self.frames) if self.frames else None
            )
        warnings.warn(message, DriftWarning, stacklevel=4)


# ---- public entry points ----------------------------------------------------------


def read_list(
    session: Any,
    service: str,
    what: Any,
    condition: Any = None,
    *,
    sort: Any = None,
    limit: int | None = None,
    labels: Any = True,
    progress: bool | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Read a whole list into one typed frame indexed by ``uid``.

    Args:
        session: an open :class:`~otyspd.Session`.
        service: ``"Candidate"``, ``"CandidateService"`` or the full name.
        what: dotted paths (``["Person.lastName", "statusId"]``) or an OWS
            ``what`` dict. ``uid`` is always read (it is the index).
        condition: ``F("statusId") == 3`` and friends, an OWS condition dict,
            or ``{"field": value}`` (an AND of equalities). An option field may
            be compared with its label, as the frame shows it: ``F("statusId")
            == "Actief"``.
        sort: ``["-entryDateTime"]`` or ``{"entryDateTime": "DESC"}``; ``uid``
            ascending is added so that pages are stable.
        limit: read at most this many rows.
        labels: True shows option fields as labels (categorical); False keeps
            the ids; a list names the columns to label.
        progress: draw a progress bar (default: when someone is watching).
        **options: ``page_size`` (rows asked per page, at least 2, default
            1000; above 200 it sends ``excludeLimitCheck``; a larger value is
            capped at 1000, the most the server serves), ``batch`` (pages per request,
            default 5), ``offset`` (resume from here), ``strict`` (raise
            DriftError instead of warning), ``types`` ({path: field type}),
            ``page_retries`` (tries again for each request of the read,
            default 3), ``max_pages`` (a hard stop).

    Raises:
        InvalidInput: a bad argument, before any request.
        IncompleteRead: a request kept failing, or the server refused one
            after rows were read (its error is the ``__cause__``); ``.partial``
            has every row read so far and ``.resume_offset`` is the ``offset=``
            to go on from.
        OwsError: the server refused the first request (a bad field or
            condition, a lost login); a refusal is not retried.
        DriftError: with ``strict=True``, when records moved while reading.

    >>> df = session.read_list("Candidate", ["Person.lastName", "statusId"],
    ...                        F("statusId") == 3, sort=["-entryDateTime"])
    """
    plan = _plan(
        session,
        service,
        what,
        condition,
        sort=sort,
        limit=limit,
        labels=labels,
        progress=progress,
        options=options,
    )
    reader = _Reader(session, plan)
    for _ in reader.chunks(CONVERT_ROWS):
        pass
    return reader.frame()


def iter_pages(
    session: Any,
    service: str,
    what: Any,
    condition: Any = None,
    *,
    sort: Any = None,
    limit: int | None = None,
    labels: Any = True,
    progress: bool | None = None,
    **options: Any,
) -> Iterator[pd.DataFrame]:
    """Yield the list one typed frame per page; memory stays bounded.

    Takes the same arguments as :func:`read_list` (``page_size`` above 1000
    is capped at 1000). The checks run before the first request; drift is
    reported when the last page has been yielded.

    When a request keeps failing, :class:`~otyspd.errors.IncompleteRead` is
    raised after the last complete page has been yielded: every row before
    ``.resume_offset`` has been handed over already, so ``.partial`` is empty.
    Going on with ``offset=err.resume_offset`` yields the rest.
    """
    plan = _plan(
        session,
        service,
        what,
        condition,
        sort=sort,
        limit=limit,
        labels=labels,
        progress=progress,
        options=options,
    )

    # Pages are fetched lazily, maybe after a ``with session.language(...)`` block
    # has ended: every step runs in the context of this call, its language included.
    context = contextvars.copy_context()

    def pages() -> Iterator[pd.DataFrame]:
        reader = context.run(_Reader, session, plan, keeps_rows=False)
        chunks = reader.chunks(1)
        while True:
            try:
                frame = context.run(next, chunks)
            except StopIteration:
                return
            reader.frames.clear()
            yield frame

    return pages()


def read_detail(
    session: Any, service: str, uid: str, what: Any, *, labels: Any = True
) -> pd.Series:
    """Read one record as a Series named by its uid (same columns and types as a list).

    >>> session.read_detail("Candidate", "1234", ["Person.lastName", "statusId"])
    """
    if not isinstance(uid, (str, int)) or isinstance(uid, bool) or str(uid) == "":
        raise InvalidInput(f"read_detail needs a uid (a string), got {uid!r}")
    plan = _plan(
        session,
        service,
        what,
        None,
        sort=None,
        limit=None,
        labels=labels,
        progress=False,
        options={},
    )
    record = session.call(f"{plan.service}.getDetail", str(uid), plan.what)
    if isinstance(record, list) and not record:
        record = {}
    if not isinstance(record, Mapping):
        raise ProtocolError(
            f"{plan.service}.getDetail({uid!r}) answered {record!r:.120}"
        )
    record = {**record, "uid": record.get("uid") or str(uid)}
    lists = (
        opt.get_options(session, plan.service, plan.label_fields)
        if plan.label_fields
        else {}
    )
    frame = records_to_frame(
        [record],
        plan.paths,
        types=plan.types,
        field_defs=plan.field_defs,
        option_labels=lists,
        service=plan.service,
        language=plan.language,
    )
    row = frame.iloc[0]
    row.name = str(record["uid"])
    row.attrs = frame.attrs
    return row


def read_list_last(
    service: str, what: Any, condition: Any = None, **options: Any
) -> pd.DataFrame:
    """:func:`read_list` on the session :func:`otyspd.connect` opened last.

    >>> otyspd.connect(sandbox=True)
    >>> df = otyspd.read_list("Candidate", ["Person.lastName"], F("statusId") == 3)
    """
    from . import session as session_module

    current = session_module._last_session
    if current is None or getattr(current, "closed", False):
        raise InvalidInput(
            "no open session: call otyspd.connect(...) first (or use session.read_list)"
        )
    return current.read_list(service, what, condition, **options)


# ---- export ------------------------------------------------------------------------


def export(
    session: Any,
    service: str,
    what: Any,
    condition: Any = None,
    *,
    path: str | os.PathLike,
    sort: Any = None,
    limit: int | None = None,
    labels: Any = True,
    progress: bool | None = None,
    **options: Any,
) -> dict:
    """Stream a list to a ``.parquet``, ``.csv`` or ``.jsonl`` file, page by page.

    Takes the same arguments as :func:`read_list` (``page_size`` above 1000 is
    capped at 1000). Memory stays bounded whatever the number of rows. The
    file is written under a temporary name in the same folder and renamed at
    the end, so a failed or interrupted export leaves no half file behind; the
    file gets the permissions a plain ``open()`` would give it. A list with no
    matching rows gives a valid empty file: a CSV with its header line, a
    Parquet file with the columns' schema, an empty JSONL file.

    Returns:
        ``{"path": ..., "rows": ..., "format": ...}``.

    Raises:
        InvalidInput: a bad argument or a path that cannot be written, before
            any request.
        IncompleteRead: a request kept failing. Nothing was written to
            ``path`` (the temporary file was removed): run the export again.
            ``.partial`` and ``.resume_offset`` are None, since an export
            resumed with ``offset=`` would hold only the end of the list.
    """
    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in ("parquet", "csv", "jsonl"):
        raise InvalidInput(
            f"export: {target.name!r} must end in .parquet, .csv or .jsonl"
        )
    if not target.parent.is_dir():
        raise InvalidInput(f"export: the folder {str(target.parent)!r} does not exist")
    if target.is_dir():
        raise InvalidInput(f"export: {str(target)!r} is a folder, not a file name")
    if fmt == "parquet":
        _need_pyarrow()
    plan = _plan(
        session,
        service,
        what,
        condition,
        sort=sort,
        limit=limit,
        labels=labels,
        progress=progress,
        options=options,
    )
    tmp = _temp_beside(target)
    writer = _Writer(fmt, tmp)
    try:
        reader = _Reader(session, plan, keeps_rows=False, export_to=target)
        for frame in reader.chunks(1):
            reader.frames.clear()
            writer.write(frame)
        if writer.rows == 0:
            # no rows: still a valid file, with the columns (and their types)
            writer.write(reader._convert([]))
        writer.close()
        os.replace(tmp, target)
    except BaseException:
        _discard(writer, tmp)
        raise
    return {"path": str(target), "rows": writer.rows, "format": fmt}


def _need_pyarrow() -> None:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise InvalidInput(
            "export: writing .parquet needs pyarrow; install it with "
            "pip install 'otyspd[parquet]' (or pip install pyarrow), "
            "or export to .csv or .jsonl"
        ) from None


def _temp_beside(target: Path) -> str:
    """Create an empty temporary file next to ``target``, with umask-respecting mode."""
    for _ in range(100):
        name = target.parent / f".{target.name}.{secrets.token_hex(4)}.part"
        try:
            # 0o666 like open(): the umask decides, not mkstemp's private 0600
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise InvalidInput(
                f"export: cannot write in the folder {str(target.parent)!r}: "
                f"{exc.strerror or exc}"
            ) from None
        os.close(fd)
        return str(name)
    raise InvalidInput(f"export: no free temporary name in {str(target.parent)!r}")


def _discard(writer: _Writer, tmp: str) -> None:
    with contextlib.suppress(Exception):
        writer.close()
    with contextlib.suppress(OSError):
        os.unlink(tmp)


class _Writer:
    """Appends page frames to one file with a fixed set of columns and types."""

    def __init__(self, fmt: str, path: str) -> None:
        self.fmt = fmt
        self.path = path
        self.rows = 0
        self._parquet = None
        self._schema = None

    def write(self, frame: pd.DataFrame) -> None:
        flat = _plain(frame)
        if self.fmt == "csv":
            flat.to_csv(self.path, mode="a", header=self.rows == 0, index=False)
        elif self.fmt == "jsonl":
            text = flat.to_json(
                orient="records", lines=True, date_format="iso", force_ascii=False
            )
            if text and not text.endswith("\n"):
                text += "\n"
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(text if len(flat) else "")
        else:
            self._write_parquet(flat)
        self.rows += len(flat)

    def _write_parquet(self, flat: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(flat, preserve_index=False)
        if self._parquet is None:
            # all-missing columns of the first page get a type that later pages can fill
            fields = [
                pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f
                for f in table.schema
            ]
            self._schema = pa.schema(fields)
            self._parquet = pq.ParquetWriter(self.path, self._schema)
        self._parquet.write_table(table.cast(self._schema))

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with uid as a column, labels as text and collections as JSON text."""
    flat = frame.reset_index()
    for col in flat.columns:
        dtype = flat[col].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            flat[col] = flat[col].astype("string")
        elif dtype is object or str(dtype) == "object":
            flat[col] = pd.array(
                [
                    None
                    if v is None
                    else json.dumps(v, ensure_ascii=False, default=str)
                    for v in flat[col]
                ],
                dtype="string",
            )
    flat.attrs = {}
    return flat
