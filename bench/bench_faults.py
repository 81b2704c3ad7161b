"""Benchmark: reading and writing under faults, load and churn, checked against the server.

Each scenario reads the candidates of a local sandbox, changes some cells,
writes them back, and then compares everything with what the sandbox holds:

- reading: rows expected, rows read, rows lost, rows read twice (or rows that
  never existed). A read that stops must raise IncompleteRead with the rows so
  far and an offset; the bench then resumes from that offset.
- writing: changes intended, written, reported as not written (failed,
  conflict, skipped, unknown), and mismatches: a cell whose reported status
  does not agree with the server's final value (checked with ``srv.get`` for
  every changed cell), plus any cell of the columns read that changed without
  being asked (read again cleanly after the write).

Scenarios: 5xx on 10% of requests; 5% dropped connections; 2% malformed
bodies (these three alternate between faults that strike before a write is
applied and after, when only its answer is lost); session expiry every 25
calls; a tight rate limit (30 requests per window, the client not told: it
must pace itself from the ``X-Orl-*`` headers and wait out any 429); records
added, changed and removed between pages; colleagues editing cells between
the read and the write; and the sandbox restarted (same database file, same
port) in the middle of a read and in the middle of a write.

Latency is off; pages are small so that every scenario makes enough requests
for its faults to strike.

    python bench/bench_faults.py                    # 2,000 candidates, 200 changes, 5 seeds
    python bench/bench_faults.py --seeds 2 --records 500 --changes 50
    python bench/bench_faults.py --only "drop 5%" --only churn

Exits with status 1 when any run misses a target: a row lost or duplicated,
a write outcome left unknown, or a report that disagrees with the server.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

import otyspd
from otyspd.errors import IncompleteRead, OtysError, RateLimited
from otyspd.sandbox import Sandbox, serve

SERVICE = "CandidateService"
COLUMNS = ["Person.firstName", "personalNr", "noticeTerm"]
#: The columns the bench changes (string fields every candidate has).
EDITED = ("personalNr", "noticeTerm")
#: Resumes tried after IncompleteRead before a read counts as failed.
MAX_RESUMES = 5


@dataclass
class Settings:
    """Sizes of one bench run (the test suite uses smaller ones)."""

    records: int = 2000
    changes: int = 200
    page_size: int = 100
    batch: int = 2
    write_batch: int = 20
    rate_window: float = 4.0


@dataclass
class Outcome:
    """What one seeded run of one scenario did, and what the server says."""

    scenario: str
    seed: int
    rows_expected: int = 0
    rows_read: int = 0
    lost: int = 0
    duplicated: int = 0
    resumes: int = 0
    intended: int = 0
    written: int = 0
    not_written: int = 0
    unknown: int = 0
    mismatch: int = 0
    conflicts: int = 0
    seen_429: int = 0
    faults: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.unknown
            or self.mismatch
            or self.errors
            or self.written + self.not_written != self.intended
        )


class Server:
    """The sandbox of one run; a restart swaps in a new one on the same port and file."""

    def __init__(self, settings: Settings, seed: int, db: str | None) -> None:
        self.settings = settings
        self.seed = seed
        self.db = db
        self.srv: Sandbox = serve(
            records=settings.records, seed=seed, rate_limit=None, db=db
        )
        self.api_key = self.srv.api_key
        self.url = self.srv.url
        self.restarts = 0
        self.faults = 0
        self.rate_limited = 0
        self.created: set[str] = set()
        self._track(self.srv)

    def _track(self, srv: Sandbox) -> None:
        """Remember every uid the sandbox hands out (records added by churn)."""
        new_uid = srv.store.new_uid

        def tracked() -> str:
            uid = new_uid()
            self.created.add(str(uid))
            return uid

        srv.store.new_uid = tracked

    def restart(self, pause: float = 0.3) -> None:
        """Stop the sandbox and start a new one on the same file and port."""
        old = self.srv
        self._tally(old)
        old.stop()
        time.sleep(pause)
        self.srv = serve(
            port=old.port,
            api_key=self.api_key,
            records=self.settings.records,
            seed=self.seed,
            rate_limit=None,
            db=self.db,
            **{k: v for k, v in old.knobs.items() if k != "rate_limit"},
        )
        self._track(self.srv)
        self.restarts += 1

    def _tally(self, srv: Sandbox) -> None:
        stats = srv.stats
        self.faults += sum(stats["faults"].values())
        self.rate_limited += stats["rate_limited"]

    def uids(self) -> set[str]:
        rows = self.srv.store.all(f'SELECT uid FROM "{SERVICE}"')
        return {str(r[0]) for r in rows}

    def stop(self) -> None:
        self._tally(self.srv)
        self.srv.stop()


def restart_after(server: Server, method: str, calls: int) -> threading.Thread:
    """From another thread: restart the sandbox once it has taken ``calls`` calls of
    ``method`` (counted as they arrive, so the restart races their answers)."""
    start = server.srv.stats["calls"][method]

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.srv.stats["calls"][method] - start >= calls:
                server.restart()
                return
            time.sleep(0.001)

    thread = threading.Thread(target=watch, name="bench-restart", daemon=True)
    thread.start()
    return thread


def connect(server: Server, **options: Any) -> otyspd.Session:
    # Retries long enough to outlast a restart; short waits otherwise.
    return otyspd.connect(
        server.api_key,
        server.url,
        retries=6,
        backoff=0.05,
        backoff_max=0.5,
        **options,
    )


def read_all(
    session: otyspd.Session, settings: Settings, outcome: Outcome
) -> pd.DataFrame:
    """Read every candidate; resume from IncompleteRead's offset until complete."""
    parts: list[pd.DataFrame] = []
    offset = 0
    for _ in range(MAX_RESUMES + 1):
        try:
            with warnings.catch_warnings():
                # Drift warnings are expected under churn; the rows are checked below.
                warnings.simplefilter("ignore", otyspd.DriftWarning)
                frame = session.read_list(
                    "Candidate",
                    COLUMNS,
                    labels=False,
                    page_size=settings.page_size,
                    batch=settings.batch,
                    offset=offset,
                    progress=False,
                )
        except IncompleteRead as exc:
            if exc.partial is None or exc.resume_offset is None:
                raise AssertionError(
                    "IncompleteRead without partial rows or an offset"
                ) from exc
            parts.append(exc.partial)
            offset = exc.resume_offset
            outcome.resumes += 1
            continue
        parts.append(frame)
        return pd.concat(parts) if len(parts) > 1 else frame
    raise AssertionError(f"the read did not complete after {MAX_RESUMES} resumes")


def check_read(
    frame: pd.DataFrame,
    before: set[str],
    after: set[str],
    created: set[str],
    outcome: Outcome,
) -> None:
    """Count rows lost (there from start to end but not read), and rows read twice
    or never on the server (a record added and removed while reading was there)."""
    read = [str(u) for u in frame.index]
    outcome.rows_expected = len(before & after)
    outcome.rows_read = len(set(read))
    outcome.lost = len((before & after) - set(read))
    phantom = set(read) - (before | after | created)
    outcome.duplicated = (len(read) - len(set(read))) + len(phantom)


def plan_edits(
    original: pd.DataFrame, count: int, seed: int, tag: str
) -> tuple[pd.DataFrame, dict[tuple[str, str], str]]:
    """Change ``count`` cells (of EDITED) on randomly chosen rows, to new unique values."""
    rng = random.Random(seed)
    uids = rng.sample(list(original.index), min(count, len(original)))
    edited = original.copy()
    intended: dict[tuple[str, str], str] = {}
    for i, uid in enumerate(uids):
        column = EDITED[i % len(EDITED)]
        value = f"{tag}-{seed}-{i}"
        edited.loc[uid, column] = value
        intended[(str(uid), column)] = value
    return edited, intended


def _value(record: dict | None, path: str) -> Any:
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _same(a: Any, b: Any) -> bool:
    missing_a = a is None or (not isinstance(a, str) and pd.isna(a))
    missing_b = b is None or (not isinstance(b, str) and pd.isna(b))
    if missing_a or missing_b:
        return missing_a and missing_b
    return str(a) == str(b)


def check_write(
    server: Server,
    session: otyspd.Session,
    settings: Settings,
    original: pd.DataFrame,
    report: Any,
    intended: dict[tuple[str, str], str],
    colleague: dict[tuple[str, str], str],
    outcome: Outcome,
) -> None:
    """Compare the report with the server, cell by cell, and look for stray changes."""
    frame = report.frame
    outcome.intended = len(intended)
    statuses = {(str(r.uid), str(r.field)): str(r.status) for r in frame.itertuples()}
    missing = set(intended) - set(statuses)
    if missing:
        outcome.errors.append(f"{len(missing)} intended change(s) not in the report")
    srv = server.srv
    for (uid, column), new in intended.items():
        status = statuses.get((uid, column), "absent")
        try:
            record = srv.get(SERVICE, uid)
        except Exception:
            record = None  # removed on the server (churn)
        now = _value(record, column) if record is not None else None
        if status in ("written", "unchanged"):
            outcome.written += 1
            if record is None or not _same(now, new):
                outcome.mismatch += 1
            continue
        if status == "unknown":
            outcome.unknown += 1
        else:
            outcome.not_written += 1
        if status == "conflict":
            outcome.conflicts += 1
        if record is None:
            continue  # not written, and the record is gone: consistent
        expected = colleague.get((uid, column), original.loc[uid, column])
        if status != "unknown" and not _same(now, expected):
            outcome.mismatch += 1

    # Nothing else moved: read the columns again, cleanly, and compare.
    srv.configure(
        fault_rate=0,
        drop_rate=0,
        malformed_rate=0,
        churn=None,
        expire_after_calls=None,
        rate_limit=None,
    )
    after = session.read_list("Candidate", COLUMNS, labels=False, progress=False)
    for uid in original.index.intersection(after.index):
        for column in COLUMNS:
            key = (str(uid), column)
            if key in intended and statuses.get(key) in ("written", "unchanged"):
                want = intended[key]
            else:
                want = colleague.get(key, original.loc[uid, column])
            if key in intended and statuses.get(key) == "unknown":
                continue
            if not _same(after.loc[uid, column], want):
                outcome.mismatch += 1


# ---- scenarios ---------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    read_knobs: dict = field(default_factory=dict)
    write_knobs: dict = field(default_factory=dict)
    needs_db: bool = False
    alternate_after_write: bool = False
    before_write: Callable[[Server, pd.DataFrame, dict, Outcome], dict] | None = None
    restart_in: str | None = None  # "read" or "write"
    rate_limited: bool = False


def colleagues_edit(
    server: Server, original: pd.DataFrame, intended: dict, outcome: Outcome
) -> dict[tuple[str, str], str]:
    """Between read and write: colleagues change a tenth of the edited cells and
    another field of as many of the same records."""
    rng = random.Random(len(intended))
    keys = sorted(intended)
    picked = rng.sample(keys, max(1, len(keys) // 10))
    edits: dict[tuple[str, str], str] = {}
    for i, (uid, column) in enumerate(picked):
        value = f"colleague-{i}"
        server.srv.edit(SERVICE, uid, {column: value})
        edits[(uid, column)] = value
        other = "Person.firstName"
        name = f"Colleague{i}"
        server.srv.edit(SERVICE, uid, {"Person": {"firstName": name}})
        edits[(uid, other)] = name
    return edits


SCENARIOS = [
    Scenario(
        "5xx 10%",
        {"fault_rate": 0.10},
        {"fault_rate": 0.10},
        alternate_after_write=True,
    ),
    Scenario(
        "drop 5%", {"drop_rate": 0.05}, {"drop_rate": 0.05}, alternate_after_write=True
    ),
    Scenario(
        "malformed 2%",
        {"malformed_rate": 0.02},
        {"malformed_rate": 0.02},
        alternate_after_write=True,
    ),
    Scenario(
        "expiry /25 calls", {"expire_after_calls": 25}, {"expire_after_calls": 25}
    ),
    Scenario("rate limit 30/window", rate_limited=True),
    Scenario("churn", {"churn": {"add": 2, "change": 2, "delete": 2}}),
    Scenario("concurrent edits", before_write=colleagues_edit),
    Scenario("restart mid-read", needs_db=True, restart_in="read"),
    Scenario("restart mid-write", needs_db=True, restart_in="write"),
]


def run_scenario(
    scenario: Scenario, seed: int, settings: Settings, folder: str
) -> Outcome:
    """One seeded run: read under the scenario, write under it, check both."""
    outcome = Outcome(scenario.name, seed)
    started = time.perf_counter()
    db = None
    if scenario.needs_db:
        slug = "".join(c if c.isalnum() else "-" for c in scenario.name)
        db = os.path.join(folder, f"{slug}-{seed}.db")
    server = Server(settings, seed, db)
    session = None
    try:
        rate: dict[str, Any] = {}
        if scenario.rate_limited:
            rate = {"rate_limit": 30, "rate_window": settings.rate_window}
        after_write = {}
        if scenario.alternate_after_write:
            after_write = {"fault_after_write": seed % 2 == 1}
        session = connect(server)

        # ---- read
        before = server.uids()
        server.srv.configure(fault_seed=seed, **scenario.read_knobs, **rate)
        watcher = None
        if scenario.restart_in == "read":
            watcher = restart_after(server, f"{SERVICE}.getListEx", 2)
        try:
            original = read_all(session, settings, outcome)
        except RateLimited as exc:
            outcome.errors.append(f"a 429 reached the caller: {exc}")
            return outcome
        if watcher is not None:
            watcher.join(timeout=30)
            if server.restarts != 1:
                outcome.errors.append("the sandbox was not restarted during the read")
        server.srv.configure(
            fault_rate=0, drop_rate=0, malformed_rate=0, churn=None, rate_limit=None
        )
        after = server.uids()
        check_read(original, before, after, server.created, outcome)
        original = original[~original.index.duplicated()]

        # ---- write
        present = original.loc[original.index.isin(list(after))]
        edited_part, intended = plan_edits(present, settings.changes, seed, "fx")
        edited = original.copy()
        edited.loc[edited_part.index] = edited_part
        colleague: dict = {}
        if scenario.before_write is not None:
            colleague = scenario.before_write(server, original, intended, outcome)
        server.srv.configure(
            fault_seed=seed + 1000, **scenario.write_knobs, **rate, **after_write
        )
        watcher = None
        if scenario.restart_in == "write":
            watcher = restart_after(server, f"{SERVICE}.update", 1)
        try:
            report = session.write_back(
                "Candidate",
                original,
                edited,
                batch_size=settings.write_batch,
                progress=False,
            )
        except RateLimited as exc:
            outcome.errors.append(f"a 429 reached the caller: {exc}")
            return outcome
        if watcher is not None:
            watcher.join(timeout=30)
            if server.restarts != 1:
                outcome.errors.append("the sandbox was not restarted during the write")
        server.srv.configure(fault_after_write=False)
        check_write(
            server, session, settings, original, report, intended, colleague, outcome
        )
        if scenario.before_write is not None:
            held = outcome.conflicts
            expected = sum(1 for k in colleague if k in intended)
            if held != expected:
                outcome.errors.append(
                    f"{expected} cells changed by colleagues, {held} reported as conflicts"
                )
    except OtysError as exc:
        outcome.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        if session is not None:
            with contextlib.suppress(OtysError):
                session.close()
        server.stop()
        outcome.seen_429 = server.rate_limited
        outcome.faults = server.faults
        outcome.seconds = time.perf_counter() - started
    return outcome


def run(settings: Settings, seeds: int, only: list[str] | None = None) -> list[Outcome]:
    outcomes = []
    chosen = [s for s in SCENARIOS if not only or s.name in only]
    with tempfile.TemporaryDirectory(prefix="otyspd-bench-faults-") as folder:
        for scenario in chosen:
            for seed in range(1, seeds + 1):
                outcomes.append(run_scenario(scenario, seed, settings, folder))
    return outcomes


# ---- the table ------------------------------------------------------------------

HEADER = (
    ("scenario", 20),
    ("runs", 4),
    ("rows exp", 8),
    ("read", 8),
    ("lost", 4),
    ("dup", 4),
    ("resumed", 7),
    ("changes", 7),
    ("written", 7),
    ("not wr.", 7),
    ("unknown", 7),
    ("mismatch", 8),
    ("faults", 6),
    ("429s", 5),
    ("s/run", 5),
    ("ok", 4),
)


def rows(outcomes: list[Outcome]) -> Iterator[list[str]]:
    names = list(dict.fromkeys(o.scenario for o in outcomes))
    for name in names:
        group = [o for o in outcomes if o.scenario == name]

        def total(attr: str, group: list[Outcome] = group) -> int:
            return sum(getattr(o, attr) for o in group)

        seconds = sum(o.seconds for o in group) / len(group)
        yield [
            name,
            str(len(group)),
            str(total("rows_expected")),
            str(total("rows_read")),
            str(total("lost")),
            str(total("duplicated")),
            str(total("resumes")),
            str(total("intended")),
            str(total("written")),
            str(total("not_written")),
            str(total("unknown")),
            str(total("mismatch")),
            str(total("faults")),
            str(total("seen_429")),
            f"{seconds:.1f}",
            "yes" if all(o.ok for o in group) else "NO",
        ]


def table(outcomes: list[Outcome]) -> str:
    lines = ["  ".join(title.rjust(width) for title, width in HEADER)]
    for row in rows(outcomes):
        lines.append(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, (_, width)) in enumerate(zip(row, HEADER, strict=True))
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="runs per scenario")
    parser.add_argument("--records", type=int, default=Settings.records)
    parser.add_argument("--changes", type=int, default=Settings.changes)
    parser.add_argument("--page-size", type=int, default=Settings.page_size)
    parser.add_argument("--batch", type=int, default=Settings.batch)
    parser.add_argument("--write-batch", type=int, default=Settings.write_batch)
    parser.add_argument(
        "--only", action="append", help="run only this scenario (repeatable)"
    )
    args = parser.parse_args(argv)
    known = {s.name for s in SCENARIOS}
    unknown = set(args.only or []) - known
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; known: {sorted(known)}")
    settings = Settings(
        records=args.records,
        changes=args.changes,
        page_size=args.page_size,
        batch=args.batch,
        write_batch=args.write_batch,
    )
    print(
        f"{settings.records} candidates read, {settings.changes} changes written per run; "
        f"pages of {settings.page_size}, {settings.batch} per request; "
        f"writes in batches of {settings.write_batch}; {args.seeds} seed(s) per scenario"
    )
    started = time.perf_counter()
    outcomes = run(settings, args.seeds, args.only)
    print(table(outcomes))
    for o in outcomes:
        for error in o.errors:
            print(f"  {o.scenario} seed {o.seed}: {error}")
    missed = [o for o in outcomes if not o.ok]
    elapsed = math.ceil(time.perf_counter() - started)
    if missed:
        print(
            f"VERDICT: {len(missed)} of {len(outcomes)} runs missed a target "
            f"({elapsed} s)"
        )
        return 1
    print(
        f"VERDICT: all {len(outcomes)} runs met every target: nothing lost, nothing "
        f"duplicated, every report matches the server ({elapsed} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
