"""Benchmark the sandbox: seeding time and 200-row getListEx pages over real HTTP.

    python bench/bench_sandbox.py [--records 100000] [--pages 50]

Builds a sandbox of ``--records`` candidates, then times ``--pages`` getListEx
requests, each a 200-row page with a condition and a two-field sort at a
different offset, and prints the median and 95th percentile in milliseconds.
The target is a median under 50 ms for 100,000 candidates. The condition and
sort are those of the manual's getListEx example (owner EQ, status NE; sort on
last name then first name); the total count is asked on every page.
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests

from otyspd.sandbox import serve

#: Seconds any one request may take before the benchmark gives up.
TIMEOUT = 60


def page_request(token: str, offset: int) -> dict:
    """The manual's getListEx example as a 200-row page: AND condition, two-field sort."""
    return {
        "jsonrpc": "2.0",
        "method": "Otys.Services.CandidateService.getListEx",
        "params": [
            token,
            {
                "what": {
                    "uid": 1,
                    "internalId": 1,
                    "statusId": 1,
                    "entryDateTime": 1,
                    "Person": {
                        "firstName": 1,
                        "lastName": 1,
                        "emailPrimary": 1,
                        "birthdate": 1,
                    },
                },
                "condition": {
                    "type": "AND",
                    "items": [
                        {"type": "COND", "field": "userId", "op": "EQ", "param": "2"},
                        {"type": "COND", "field": "statusId", "op": "NE", "param": "3"},
                    ],
                },
                "sort": {"Person.lastName": "ASC", "Person.firstName": "ASC"},
                "limit": 200,
                "offset": offset,
                "getTotalCount": 1,
            },
        ],
        "id": 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=50)
    args = parser.parse_args()

    started = time.perf_counter()
    srv = serve(records=args.records, rate_limit=None)
    seeding = time.perf_counter() - started
    http = requests.Session()
    try:
        login = {"method": "loginByUid", "params": [srv.api_key], "id": 1}
        token = http.post(srv.url, json=login, timeout=TIMEOUT).json()["result"]

        # The first page warms the connection and caches and tells how many match.
        first = http.post(srv.url, json=page_request(token, 0), timeout=TIMEOUT)
        matching = first.json()["result"]["totalCount"]
        timings = []
        for i in range(args.pages):
            # Walk the pages of the matching records, as a client reading them all would.
            body = page_request(token, (i * 200) % max(200, matching - 200))
            t0 = time.perf_counter()
            answer = http.post(srv.url, json=body, timeout=TIMEOUT).json()
            timings.append((time.perf_counter() - t0) * 1000)
            assert len(answer["result"]["listOutput"]) == 200, answer
    finally:
        http.close()
        srv.stop()

    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * len(timings)) - 1)]
    print(f"records            {args.records}")
    print(f"seeding            {seeding:.1f} s")
    print(
        f"pages              {args.pages} x 200 rows of {matching} matching (condition + sort, HTTP)"
    )
    print(f"median             {statistics.median(timings):.1f} ms")
    print(f"p95                {p95:.1f} ms")


if __name__ == "__main__":
    main()
