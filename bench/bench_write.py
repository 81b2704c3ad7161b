"""Benchmark: write-back of many changed records vs a loop of single update calls.

Runs against a local sandbox with 50 ms latency per request. The sandbox's
rate limit and the client's pacing are both off, so the numbers measure round
trips, not waiting for a request budget (with the real limit of 350 requests a
minute the loop would take about three minutes for 1,000 records).

    python bench/bench_write.py            # 1,000 records
    python bench/bench_write.py --records 300 --latency 0.02
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

import otyspd
from otyspd import writeback
from otyspd.sandbox import Sandbox, serve

FIELD = "Person.firstName"


def read_frame(session: otyspd.Session, count: int) -> pd.DataFrame:
    """The first ``count`` candidates with the column to edit, as a read gives them."""
    frame = session.read_list("Candidate", ["uid", FIELD], sort=["uid"], limit=count)
    return frame.iloc[:count]


def calls_made(srv: Sandbox) -> int:
    """Requests the sandbox has answered so far."""
    return srv.stats["requests"]


def edit(frame: pd.DataFrame, tag: str) -> pd.DataFrame:
    """A copy of ``frame`` with every value of the edited column changed."""
    edited = frame.copy()
    edited[FIELD] = [f"{tag}{i}" for i in range(len(edited))]
    return edited


def bench(records: int, latency: float, batch_size: int) -> None:
    with serve(records=records + 50, latency=latency, rate_limit=None, seed=7) as srv:
        session = otyspd.connect(
            srv.api_key,
            srv.url,
            rate_limit=None,
            username=srv.username,
            password=srv.password,
        )
        original = read_frame(session, records)
        assert len(original) == records, f"read {len(original)} of {records} records"

        # write_back: a conflict read and then the updates, both batched.
        edited = edit(original, "Bulk")
        before = calls_made(srv)
        started = time.perf_counter()
        report = writeback.write_back(
            session,
            "Candidate",
            original,
            edited,
            batch_size=batch_size,
            progress=False,
        )
        bulk_time = time.perf_counter() - started
        bulk_requests = calls_made(srv) - before
        assert report.counts == {"written": records}, report.counts
        check_share = report.timings["check"] / report.timings["total"]

        # The loop: one update request per record, as a naive client would.
        looped = edit(original, "Loop")
        before = calls_made(srv)
        started = time.perf_counter()
        for uid, value in looped[FIELD].items():
            session.call(
                "CandidateService.update", uid, {"Person": {"firstName": value}}
            )
        loop_time = time.perf_counter() - started
        loop_requests = calls_made(srv) - before
        session.logout()

    print(
        f"sandbox: {records} changed records, latency {latency * 1000:.0f} ms per request,"
    )
    print("         rate limit off (sandbox and client pacing)")
    print(f"write_back (batch_size={batch_size}):")
    print(f"  {bulk_time:7.2f} s  {bulk_requests:5d} requests")
    print(f"  conflict check: {check_share:.0%} of its time")
    print("loop of single update calls:")
    print(f"  {loop_time:7.2f} s  {loop_requests:5d} requests")
    print(
        f"speed-up: {loop_time / bulk_time:.1f}x faster, {loop_requests / bulk_requests:.1f}x fewer requests"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument(
        "--latency", type=float, default=0.05, help="seconds per request"
    )
    parser.add_argument("--batch-size", type=int, default=writeback.DEFAULT_BATCH_SIZE)
    args = parser.parse_args()
    bench(args.records, args.latency, args.batch_size)


if __name__ == "__main__":
    main()
