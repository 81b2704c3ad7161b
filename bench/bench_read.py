"""How fast and how lean read_list is, against the plain loop the manual describes.

Run: ``python bench/bench_read.py`` (about a minute). It prints:

1. Reading 20,000 candidates with 12 fields (nested and option fields among
   them) from a sandbox answering each request after 50 ms: (a) the manual's
   loop (sequential ``getListEx`` pages of 200 with ``requests``, then
   ``pandas.json_normalize``) and (b) ``session.read_list`` with its defaults.
   Time, HTTP requests (from the sandbox's own counters) and the ratio.
2. Client-side time to turn 100,000 records into the typed, labelled frame,
   against ``pandas.json_normalize`` on the same records.
3. Peak memory (tracemalloc plus Arrow's memory pool) of a 100,000-row read against the frame's own
   ``memory_usage(deep=True)``.

The sandbox runs in a child process, so that its work and memory are not
counted as the client's. Its rate limit is switched off: the point is the
client's round trips, not the server's budget.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import sys
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import pandas as pd
import requests

import otyspd
from otyspd.frames import records_to_frame
from otyspd.options import get_options

FIELDS = [
    "uid",
    "internalId",
    "statusId",
    "userId",
    "entryDateTime",
    "availableAt",
    "Person.firstName",
    "Person.lastName",
    "Person.emailPrimary",
    "Person.gender",
    "Person.AddressPrimary.city",
    "matchCriteria_1",
]
LATENCY = 0.05
T = TypeVar("T")


# ---- a sandbox in a child process -------------------------------------------------


def _serve_child(conn: Connection, options: dict[str, Any]) -> None:
    """Serve a sandbox and answer the parent's commands until it says stop."""
    from otyspd.sandbox import serve

    srv = serve(port=0, **options)
    conn.send((srv.url, srv.api_key, srv.username, srv.password))
    while True:
        command = conn.recv()
        if command == "requests":
            conn.send(srv.stats["requests"])
        elif command == "stop":
            srv.stop()
            conn.send(True)
            return


class ChildSandbox:
    """A sandbox server running in its own process, reachable on 127.0.0.1."""

    def __init__(self, **options: Any) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve_child, args=(child, options), daemon=True)
        self.proc.start()
        self.url, self.api_key, self.username, self.password = self.conn.recv()

    def requests(self) -> int:
        """The number of HTTP requests the sandbox has answered so far."""
        self.conn.send("requests")
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send("stop")
        self.conn.recv()
        self.proc.join(10)


class ArrowPeak:
    """Samples pyarrow's memory pool in a thread and keeps the highest value."""

    def __enter__(self) -> ArrowPeak:
        import pyarrow as pa

        self.peak = 0
        self._base = pa.total_allocated_bytes()
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.is_set():
                self.peak = max(self.peak, pa.total_allocated_bytes() - self._base)
                time.sleep(0.005)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import pyarrow as pa

        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, pa.total_allocated_bytes() - self._base)


# ---- the two ways of reading --------------------------------------------------------


def plain_loop(url: str, api_key: str) -> pd.DataFrame:
    """The manual's loop: log in, page getListEx by 200, then json_normalize."""
    http = requests.Session()

    def rpc(method: str, params: list) -> Any:
        body = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
        answer = http.post(url, json=body, timeout=60).json()
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["result"]

    token = rpc("loginByUid", [api_key])
    what = otyspd.query.what_from_paths(FIELDS)
    rows, offset, total = [], 0, None
    while total is None or offset < total:
        page = rpc(
            "Otys.Services.CandidateService.getListEx",
            [token, {"what": what, "limit": 200, "offset": offset, "getTotalCount": 1}],
        )
        total = page["totalCount"]
        if not page["listOutput"]:
            break
        rows.extend(page["listOutput"])
        offset += len(page["listOutput"])
    rpc("logout", [token])
    return pd.json_normalize(rows)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """What ``fn()`` returns, and the seconds it took."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def connect(box: ChildSandbox) -> otyspd.Session:
    return otyspd.connect(
        box.api_key, box.url, rate_limit=0, username=box.username, password=box.password
    )


def main() -> None:
    print(
        f"otyspd read benchmark (python {sys.version.split()[0]}, pandas {pd.__version__})"
    )
    print(
        f"sandbox in a child process, latency {LATENCY * 1000:.0f} ms per request, rate limit off"
    )
    print()

    # 1. round trips ------------------------------------------------------------------
    box = ChildSandbox(records=20_000, seed=1, latency=LATENCY, rate_limit=None)
    try:
        before = box.requests()
        plain, t_plain = timed(lambda: plain_loop(box.url, box.api_key))
        n_plain = box.requests() - before

        session = connect(box)
        before = box.requests()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", otyspd.UnknownOptionWarning)
            ours, t_ours = timed(
                lambda: session.read_list("Candidate", FIELDS, progress=False)
            )
        n_ours = box.requests() - before
        before = box.requests()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", otyspd.UnknownOptionWarning)
            big, t_big = timed(
                lambda: session.read_list(
                    "Candidate", FIELDS, progress=False, page_size=200, batch=10
                )
            )
        n_big = box.requests() - before
        session.close()
    finally:
        box.stop()
    print("1. read 20,000 candidates, 12 fields")
    print(
        f"   (a) plain loop + json_normalize : {t_plain:6.2f} s  {n_plain:4d} HTTP requests  {len(plain)} rows"
    )
    print(
        f"   (b) read_list (defaults)        : {t_ours:6.2f} s  {n_ours:4d} HTTP requests  {len(ours)} rows"
    )
    print(
        f"   (c) read_list, pages of 200     : {t_big:6.2f} s  {n_big:4d} HTTP requests  {len(big)} rows"
    )
    print(
        f"   ratio: read_list is {t_plain / t_ours:.1f}x faster with its defaults, "
        f"{t_plain / t_big:.1f}x with the plain 200-row pages (target: at least 4x with the defaults)"
    )
    print(
        "   both pay the sandbox's own time per row; read_list saves the waiting per request"
    )
    print()

    # 2. conversion --------------------------------------------------------------------
    box = ChildSandbox(records=100_000, seed=2, latency=0.0, rate_limit=None)
    try:
        session = connect(box)
        what = otyspd.query.what_from_paths(FIELDS)
        raw = []
        for start in range(0, 100_000, 1000):
            page = session.call(
                "CandidateService.getListEx",
                {
                    "what": what,
                    "limit": 1000,
                    "offset": start,
                    "excludeLimitCheck": True,
                    "sort": {"uid": "ASC"},
                },
            )
            raw.extend(page["listOutput"])
        defs = session.field_defs("Candidate")
        labels = get_options(
            session,
            "Candidate",
            [
                f
                for f in FIELDS
                if defs and defs[f].has_options and defs[f].type != "collection"
            ],
        )

        gc.collect()
        _, t_norm = timed(lambda: pd.json_normalize(raw))
        gc.collect()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", otyspd.UnknownOptionWarning)
            typed, t_typed = timed(
                lambda: records_to_frame(
                    raw, FIELDS, field_defs=defs, option_labels=labels
                )
            )
        raw = None
        print(f"2. turn {len(typed):,} records into a frame (client side only)")
        print(f"   pandas.json_normalize (untyped, ids unlabelled): {t_norm:6.2f} s")
        print(f"   records_to_frame (typed, labelled)             : {t_typed:6.2f} s")
        print(f"   ratio: {t_norm / t_typed:.2f} (target: at least 1.0, no slower)")
        print()

        # 3. memory ----------------------------------------------------------------------
        del typed
        gc.collect()
        session._cache.clear()
        arrow = ArrowPeak()
        tracemalloc.start()
        with arrow, warnings.catch_warnings():
            warnings.simplefilter("ignore", otyspd.UnknownOptionWarning)
            frame = session.read_list("Candidate", FIELDS, progress=False)
        _, peak_py = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peak = peak_py + arrow.peak
        own = int(frame.memory_usage(deep=True).sum())
        session.close()
    finally:
        box.stop()
    print(f"3. memory of a {len(frame):,}-row read")
    print(
        f"   peak while reading        : {peak / 2**20:7.1f} MiB "
        f"(Python heap by tracemalloc {peak_py / 2**20:.1f} + Arrow pool peak {arrow.peak / 2**20:.1f})"
    )
    print(
        f"   the frame's own size      : {own / 2**20:7.1f} MiB (memory_usage(deep=True))"
    )
    print(f"   ratio: {peak / own:.2f} (target: at most 3)")
    print(
        "   tracemalloc does not see Arrow's memory pool (string columns), so its peak,"
    )
    print(
        "   sampled every 5 ms, is added: the sum is an upper bound of the true peak."
    )


if __name__ == "__main__":
    main()
