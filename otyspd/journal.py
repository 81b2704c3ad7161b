"""The record of a write: the report, the journal file, and undo.

:class:`WriteReport` is what :func:`otyspd.writeback.write_back` returns: one
row per changed cell with its status, the payloads, and the journal of before
and after values, from which :meth:`WriteReport.undo` restores the cells.

What undo can and cannot do: it puts back the old value of every cell the
write changed (a cell changed again since is a conflict, left alone unless
forced); it deletes the records the write added; it cannot bring back a record
the write deleted. Such a record is a ``skipped`` row of the undo's report and
draws an :class:`UndoWarning`; its delete line in the journal keeps the values
that were read (``before``), from which it can be added again, with a new uid.

A journal file is JSON Lines, appended to and flushed after every batch, so a
write that is interrupted leaves an accurate record. Each batch is written
twice: first with status ``sending`` (the intent), then with its outcome
(``written``, ``failed``, ``unknown``...). The last line for a cell wins, so a
cell whose outcome line is missing still reads as ``sending``: undo then
restores it only if the server holds the value that was being sent.

One line::

    {"run": "3f9a0c2b7d1e", "ts": "2026-01-05T10:12:03+00:00",
     "service": "CandidateService", "op": "update", "uid": "1042",
     "field": "Person.lastName", "kind": "string", "before": "Jansen",
     "after": "Janssen", "status": "written", "error": null}

Journals hold record values, never the API key or the session token.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import html
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import InvalidInput

if TYPE_CHECKING:
    from .writeback import _Plan, _Run

__all__ = [
    "Journal",
    "UndoWarning",
    "WriteReport",
    "journal_entry",
    "read_journal",
    "undo_journal",
]

log = logging.getLogger(__name__)

#: Every status a cell can end in, in the order reports list them.
STATUSES = (
    "planned",
    "written",
    "added",
    "deleted",
    "unchanged",
    "conflict",
    "failed",
    "unknown",
    "skipped",
)

#: The ``field`` of a row that stands for a whole record (an add or a delete).
RECORD = "(record)"

_LOST = {
    "deleted": "deleted by the write being undone",
    "unknown": "the write being undone may have deleted it (its delete got no answer)",
}
_NOT_BACK = (
    "undo cannot bring back a deleted record; the 'before' of its delete line in the "
    "journal holds the values that were read (dotted field -> value as the server "
    "takes it), from which it can be added again, with a new uid"
)


class UndoWarning(UserWarning):
    """An undo left something as it is: records the write deleted cannot come back."""


def refuse_unknown_options(where: str, unknown: dict[str, Any], valid: Any) -> None:
    """Raise :class:`InvalidInput` naming each unknown keyword option and the valid ones."""
    if not unknown:
        return
    named = []
    for name in unknown:
        near = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
        named.append(f"{name!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    raise InvalidInput(
        f"{where}() got unknown options: {', '.join(named)}; "
        f"valid options: {', '.join(valid)}"
    )


def journal_entry(
    run: str,
    service: str,
    op: str,
    uid: str,
    field: str,
    kind: str,
    before: Any,
    after: Any,
) -> dict[str, Any]:
    """One journal line (without its status) for a cell, or for a whole record."""
    return {
        "run": run,
        "ts": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "service": service,
        "op": op,
        "uid": uid,
        "field": field,
        "kind": kind,
        "before": before,
        "after": after,
    }


class Journal:
    """Appends journal lines to a file, flushed to disk after every call to :meth:`write`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InvalidInput(
                f"journal must be a file path, {str(self.path)!r} is a folder"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        lines = "".join(
            json.dumps(e, allow_nan=False, ensure_ascii=False, sort_keys=False) + "\n"
            for e in entries
        )
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def __repr__(self) -> str:
        return f"Journal({self.path.name!r})"


def read_journal(
    path: str | os.PathLike[str], *, run: str | None = None
) -> list[dict[str, Any]]:
    """The entries of one run (the last in the file unless ``run`` is given), last line per cell.

    >>> entries = read_journal("fixes.jsonl")
    """
    source = Path(path)
    if not source.is_file():
        raise InvalidInput(f"no journal at {str(source)!r}")
    lines = []
    with source.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                lines.append((number, json.loads(text)))
            except json.JSONDecodeError:
                lines.append((number, None))
    # A crash while writing can only cut the last line short; anything else is damage.
    if lines and lines[-1][1] is None:
        log.warning("%s: the last line is cut short and was ignored", source.name)
        lines.pop()
    damaged = [number for number, entry in lines if entry is None]
    if damaged:
        raise InvalidInput(
            f"{source.name}: lines {damaged[:5]} are not JSON (the file was edited?)"
        )
    lines = [entry for _, entry in lines]
    if not lines:
        return []
    wanted = run or lines[-1].get("run")
    if run is not None and not any(e.get("run") == run for e in lines):
        raise InvalidInput(f"{source.name} holds no run {run!r}")
    latest: dict[tuple, dict[str, Any]] = {}
    for entry in lines:
        if entry.get("run") == wanted:
            latest[(entry["op"], entry["uid"], entry["field"])] = entry
    return list(latest.values())


# ---- undo ----------------------------------------------------------------------


def undo_journal(
    session: Any,
    path: Any,
    *,
    run: str | None = None,
    force: bool = False,
    journal: Any = None,
    batch_size: int = 50,
    progress: bool | None = None,
    **unknown: Any,
) -> WriteReport:
    """Undo the writes recorded in a journal file (the last run in it, or ``run``).

    A cell is restored only while the server still holds the value that was
    written; a cell changed again since then is a conflict (unless ``force``).
    Records the write added are deleted; records it deleted cannot be brought
    back (see the module docstring).

    >>> otyspd.writeback.undo_journal(session, "fixes.jsonl")
    """
    refuse_unknown_options(
        "undo_journal",
        unknown,
        ("run", "force", "journal", "batch_size", "progress"),
    )
    entries = read_journal(path, run=run)
    return _undo(
        session,
        entries,
        force=force,
        journal=journal,
        batch_size=batch_size,
        progress=progress,
    )


def _undo(
    session: Any,
    entries: list[dict],
    *,
    force: bool,
    journal: Any,
    batch_size: int,
    progress: bool | None,
) -> WriteReport:
    """Write back the "before" value of every cell that was (or may have been) written."""
    from . import writeback

    plan = writeback._undo_plan(entries)
    report = writeback._run_plan(
        session,
        plan,
        force=force,
        batch_size=batch_size,
        progress=progress,
        journal=journal,
    )
    if plan.lost:
        uids = ", ".join(repr(uid) for uid, _ in plan.lost[:5])
        more = f" and {len(plan.lost) - 5} more" if len(plan.lost) > 5 else ""
        warnings.warn(
            f"undo did not bring back {len(plan.lost)} deleted record(s) "
            f"({uids}{more}): {_NOT_BACK}",
            UndoWarning,
            stacklevel=3,
        )
    return report


# ---- the report ---------------------------------------------------------------------


class WriteReport:
    """What a write did (or, for a dry run, would do), cell by cell.

    Attributes:
        frame: one row per change: ``uid``, ``field``, ``old``, ``new``,
            ``status``, ``error`` and, for conflicts, ``server`` (its current value).
            A row is a cell: an added record has one row per field it sets; a
            deleted record has one row, with ``field`` ``"(record)"``.
        counts: status -> number of rows (so of cells, not records), in a
            fixed order. The repr names the records too: ``added=3 cells in 1 record``.
        payloads: uid -> the nested payload sent (or planned) for that record.
        journal: before and after values of every cell written.
        dry_run: True when nothing was written.
        ok: True when nothing failed, conflicted or stayed unknown.

    Statuses: ``written``, ``failed``, ``conflict``, ``skipped``, ``unchanged``
    (the server already held the new value), ``planned`` (dry run),
    ``added``, ``deleted``, and ``unknown`` (no answer and no way to tell).
    """

    def __init__(
        self,
        *,
        session: Any,
        plan: _Plan,
        run: _Run,
        payloads: dict[str, dict],
        deleted: dict[str, tuple],
        dry_run: bool,
        timings: dict[str, float],
        run_id: str,
    ) -> None:
        self._session = session
        self._plan = plan
        self._run = run
        self.service = plan.service
        self.dry_run = dry_run
        self.payloads = payloads
        self.timings = timings
        self.run_id = run_id
        self.frame = self._build_frame(deleted)
        self.journal = list(run.entries)
        counts = self.frame["status"].value_counts()
        self.counts = {s: int(counts[s]) for s in STATUSES if s in counts.index}

    def _build_frame(self, deleted: dict[str, tuple]) -> pd.DataFrame:
        rows = []
        for c in self._plan.cells:
            server = (
                c.server_shown()
                if c.server is not None or c.status == "conflict"
                else None
            )
            rows.append((c.uid, c.field, c.old, c.new, c.status, c.error, server))
        for r in self._plan.adds:
            status = "planned" if self.dry_run and r.status == "planned" else r.status
            uid = r.uid or r.key
            rows += [
                (uid, name, None, value, status, r.error, None)
                for name, value in r.shown.items()
            ]
        for uid in self._plan.deletes:
            status, error = deleted.get(uid, ("planned", None))
            rows.append((uid, RECORD, None, None, status, error, None))
        note = "left out of edited; pass allow_delete=True to delete"
        rows += [
            (uid, RECORD, None, None, "skipped", note, None)
            for uid in self._plan.missing
        ]
        rows += [
            (uid, RECORD, None, None, "skipped", f"{_LOST[how]}: {_NOT_BACK}", None)
            for uid, how in self._plan.lost
        ]
        columns = ["uid", "field", "old", "new", "status", "error", "server"]
        frame = pd.DataFrame(rows, columns=columns, dtype=object)
        return frame.astype({"uid": "string", "field": "string", "status": "string"})

    # ---- reading the report ----

    @property
    def ok(self) -> bool:
        return not any(s in self.counts for s in ("failed", "conflict", "unknown"))

    @property
    def conflicts(self) -> pd.DataFrame:
        """The rows held back because the server changed them since they were read."""
        return self.frame[self.frame["status"] == "conflict"].reset_index(drop=True)

    @property
    def failed(self) -> pd.DataFrame:
        """The rows that were refused, or whose outcome is unknown."""
        return self.frame[self.frame["status"].isin(["failed", "unknown"])].reset_index(
            drop=True
        )

    def updated(self, original: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``original`` where the cells the server now holds take their new values.

        Only confirmed cells (``written``, or ``unchanged`` because the server
        already had them) move; so ``write_back(updated, edited)`` later sends
        exactly what is still missing, and nothing twice.

        >>> original = report.updated(original)
        """
        fresh = original.copy()
        confirmed = self.frame[self.frame["status"].isin(["written", "unchanged"])]
        keys = {str(k): k for k in fresh.index}
        for name, rows in confirmed.groupby("field", sort=False):
            if name not in fresh.columns:
                continue
            where = [keys[str(uid)] for uid in rows["uid"] if str(uid) in keys]
            values = [
                v
                for uid, v in zip(rows["uid"], rows["new"], strict=True)
                if str(uid) in keys
            ]
            column = fresh[name]
            if isinstance(column.dtype, pd.CategoricalDtype):
                extra = [
                    v
                    for v in values
                    if isinstance(v, str) and v not in column.cat.categories
                ]
                if extra:
                    fresh[name] = column.cat.add_categories(sorted(set(extra)))
            try:
                fresh.loc[where, name] = values
            except (TypeError, ValueError):
                # The new values do not fit the read dtype (a label typed as text...).
                fresh[name] = fresh[name].astype(object)
                fresh.loc[where, name] = values
        fresh.attrs = copy.deepcopy(original.attrs)
        return fresh

    def _summary(self) -> str:
        parts = []
        for status, cells in self.counts.items():
            part = f"{status}={cells}"
            if status == "added":
                uids = self.frame.loc[self.frame["status"] == "added", "uid"]
                records = uids.nunique()
                if records != cells:
                    noun = "record" if records == 1 else "records"
                    part += f" cells in {records} {noun}"
            parts.append(part)
        counts = ", ".join(parts) or "no changes"
        kind = "dry run of " if self.dry_run else ""
        return f"{kind}{self.service}: {counts}"

    def __repr__(self) -> str:
        return f"WriteReport({self._summary()})"

    def _repr_html_(self) -> str:
        head = self.frame.head(50).to_html(index=False, na_rep="", escape=True)
        more = len(self.frame) - 50
        tail = f"<p>... and {more} more rows (see .frame)</p>" if more > 0 else ""
        return f"<p><b>WriteReport</b> {html.escape(self._summary())}</p>{head}{tail}"

    # ---- acting on it ----

    def apply(
        self,
        exclude: Any = None,
        *,
        force: bool | None = None,
        journal: Any = None,
        progress: bool | None = None,
        **unknown: Any,
    ) -> WriteReport:
        """Write a dry run's plan, minus the ``(uid, field)`` pairs (or uids) in ``exclude``.

        The server's values are checked again first: time has passed since the plan.
        Each exclude entry must name a change of the plan (any status, matched
        exactly); one that matches none raises :class:`InvalidInput` and nothing is sent.

        >>> plan = session.write_back("Candidate", df, edited, dry_run=True)
        >>> report = plan.apply(exclude=[("1042", "Person.lastName")])
        """
        refuse_unknown_options(
            "apply", unknown, ("exclude", "force", "journal", "progress")
        )
        if not self.dry_run:
            raise InvalidInput(
                "this report is not a plan: it was already written (see .frame)"
            )
        from . import writeback

        return writeback._run_plan(
            self._session,
            writeback._without(self._plan, exclude),
            force=self._run.force if force is None else force,
            batch_size=self._run.batch_size,
            progress=self._run.progress if progress is None else progress,
            journal=journal,
        )

    def undo(
        self,
        *,
        force: bool = False,
        journal: Any = None,
        progress: bool | None = None,
        **unknown: Any,
    ) -> WriteReport:
        """Restore the values this write replaced; return the undo's own report.

        A cell changed again on the server since this write is a conflict and
        is left alone unless ``force=True``. Records this write added are
        deleted, whatever was changed in them since. Records this write deleted
        cannot be brought back: each is a ``skipped`` row of the undo's report,
        with an :class:`UndoWarning`; their read values are the ``before`` of
        their delete lines in :attr:`journal`, to add them again by hand.
        """
        refuse_unknown_options("undo", unknown, ("force", "journal", "progress"))
        if self.dry_run:
            raise InvalidInput("a dry run wrote nothing, so there is nothing to undo")
        return _undo(
            self._session,
            self.journal,
            force=force,
            journal=journal,
            batch_size=self._run.batch_size,
            progress=progress,
        )
