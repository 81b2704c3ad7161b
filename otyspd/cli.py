"""The ``otyspd`` command.

    otyspd sandbox --port 8765 --api-key demo-key      run a local OWS simulator

Each subcommand is a ``_add_<name>`` function that declares its arguments and
a ``_run_<name>`` function that carries it out; :func:`main` wires them up.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

__all__ = ["main"]


def _add_sandbox(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sandbox",
        help="run a local OWS simulator on 127.0.0.1 until Ctrl-C",
        description=(
            "Run the otyspd sandbox, a local simulator of the OTYS web services with "
            "made-up data, in the foreground. It prints its URL and API key."
        ),
    )
    p.add_argument(
        "--port",
        type=int,
        default=8765,
        help="TCP port (0 picks a free one; default 8765)",
    )
    p.add_argument(
        "--api-key", default=None, help="the key loginByUid accepts (random if omitted)"
    )
    p.add_argument(
        "--records", type=int, default=2000, help="candidates to seed (default 2000)"
    )
    p.add_argument(
        "--seed", type=int, default=1, help="seed of the generated data (default 1)"
    )
    p.add_argument(
        "--latency", type=float, default=0.0, help="milliseconds added to every request"
    )
    p.add_argument(
        "--db", default=None, help="SQLite file to keep the data in (default: memory)"
    )
    p.add_argument(
        "--rate-limit",
        type=int,
        default=350,
        help="requests per minute per API key (0 switches the limit off; default 350)",
    )
    p.add_argument(
        "--password",
        default=None,
        help="password of the /info/ pages (random if omitted)",
    )
    p.set_defaults(run=_run_sandbox)


def _run_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import serve

    if args.records < 1:
        print("otyspd sandbox: --records must be at least 1", file=sys.stderr)
        return 2
    if args.latency < 0:
        print("otyspd sandbox: --latency must not be negative", file=sys.stderr)
        return 2
    print(
        f"Seeding {args.records} simulated candidates (seed {args.seed}) ...",
        flush=True,
    )
    srv = serve(
        port=args.port,
        api_key=args.api_key,
        records=args.records,
        seed=args.seed,
        latency=args.latency / 1000.0,
        rate_limit=args.rate_limit or None,
        db=args.db,
        password=args.password,
    )
    # Printing the key is the point: it is the sandbox's own key, not a real one.
    print(f"OWS sandbox (simulated data) at {srv.url}")
    print(f"API key:  {srv.api_key}")
    print(
        f"Field pages: {srv.base_url}/info/  (user {srv.username}, password {srv.password})"
    )
    print("Press Ctrl-C to stop.", flush=True)

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        print("Sandbox stopped.")
    return 0


# Further subcommands (e.g. ``export``) add themselves here with an _add_<name> function.
_SUBCOMMANDS = [_add_sandbox]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``otyspd`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="otyspd", description="pandas toolkit for the OTYS web services"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
