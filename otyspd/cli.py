"""The ``otyspd`` command.

    otyspd demo                                        a cleanup walk-through on the sandbox
    otyspd sandbox --port 8765 --api-key demo-key      run a local OWS simulator
    otyspd export Candidate --what Person.lastName,statusId --where statusId=3 -o out.parquet

Each subcommand is a ``_add_<name>`` function that declares its arguments and
a ``_run_<name>`` function that carries it out; :func:`main` wires them up.

Mistakes print one line, never a traceback. Exit status: 0 done, 1 failed,
2 a usage error (a bad option or value, found before anything starts),
130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


def _say(command: str, message: object) -> None:
    print(f"otyspd {command}: {message}", file=sys.stderr)


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="a cleanup walk-through on a local sandbox with made-up data",
        description=(
            "Start a local sandbox, read its candidates into a DataFrame, tidy "
            "e-mail addresses and names, write the fixes back, check the server "
            "holds them, and undo. Needs no API key and reaches no other host."
        ),
    )
    p.add_argument(
        "--records", type=int, default=500, help="candidates to seed (default 500)"
    )
    p.add_argument(
        "--seed", type=int, default=1, help="seed of the generated data (default 1)"
    )
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    import otyspd
    from otyspd.demo import run_demo

    if args.records < 1:
        _say("demo", "--records must be at least 1")
        return USAGE
    try:
        run_demo(records=args.records, seed=args.seed, out=sys.stdout)
    except (otyspd.OtysError, AssertionError) as exc:
        _say("demo", exc)
        return FAILED
    return OK


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
        _say("sandbox", "--records must be at least 1")
        return USAGE
    if args.latency < 0:
        _say("sandbox", "--latency must not be negative")
        return USAGE
    if not 0 <= args.port <= 65535:
        _say("sandbox", f"--port must be between 0 and 65535, got {args.port}")
        return USAGE
    if args.rate_limit < 0:
        _say("sandbox", "--rate-limit must not be negative (0 switches it off)")
        return USAGE
    print(
        f"Seeding {args.records} simulated candidates (seed {args.seed}) ...",
        flush=True,
    )
    try:
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
    except OSError as exc:
        _say(
            "sandbox", f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}"
        )
        return FAILED
    except sqlite3.Error as exc:
        _say("sandbox", f"cannot use the database {args.db!r}: {exc}")
        return FAILED
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
    return OK


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="stream a list to a .parquet, .csv or .jsonl file",
        description=(
            "Read a whole list page by page and write it to a file, with memory that "
            "does not grow with the number of rows. Connects with OTYS_API_KEY and "
            "OTYS_URL, or to a local sandbox with --sandbox. The file appears only "
            "when the export is complete."
        ),
        epilog=(
            "--where: clauses joined by commas (AND), each 'field OP value' with OP one "
            "of = != > >= < <= ~ (LIKE, % is any text) !~ (NOT LIKE). 'a=1|2' is one "
            "of several values, 'a=true' tests a boolean; digits without a leading "
            "zero are numbers, anything else (or a quoted value) is text. Example: "
            "--where 'statusId=3,Person.emailPrimary~%@example.com'"
        ),
    )
    p.add_argument("service", help="e.g. Candidate, Vacancy or CandidateService")
    p.add_argument(
        "--what",
        required=True,
        help="comma-separated dotted fields, e.g. Person.lastName,statusId",
    )
    p.add_argument("--where", default=None, help="a condition; see below")
    p.add_argument(
        "--sort",
        default=None,
        help="comma-separated fields, '-' for descending: -entryDateTime",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="the file to write: .parquet, .csv or .jsonl",
    )
    p.add_argument(
        "--limit", type=int, default=None, help="write at most this many rows"
    )
    p.add_argument(
        "--page-size",
        type=int,
        default=None,
        help="rows per page (default: the largest the server serves, up to 1000)",
    )
    p.add_argument(
        "--no-labels", action="store_true", help="write option ids, not labels"
    )
    p.add_argument("--language", default=None, help="content language, e.g. en")
    p.add_argument(
        "--sandbox",
        action="store_true",
        help="export from a local sandbox with made-up data",
    )
    p.add_argument(
        "--records", type=int, default=2000, help="with --sandbox: candidates to seed"
    )
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    import contextlib

    import otyspd
    from otyspd.paging import _need_pyarrow
    from otyspd.query import parse_where

    # what can be checked without a server is checked before connecting
    problem = _export_usage_problem(args)
    if problem:
        _say("export", problem)
        return USAGE
    try:
        condition = parse_where(args.where) if args.where else None
        if Path(args.output).suffix.lower() == ".parquet":
            _need_pyarrow()
    except otyspd.InvalidInput as exc:
        _say("export", exc)
        return USAGE
    sort = [s.strip() for s in args.sort.split(",") if s.strip()] if args.sort else None
    try:
        if args.sandbox:
            session = otyspd.connect(sandbox=True, records=args.records)
        else:
            session = otyspd.connect()
        with session:
            language = (
                session.language(args.language)
                if args.language
                else contextlib.nullcontext()
            )
            with language:
                info = session.export(
                    args.service,
                    args.what,
                    condition,
                    path=args.output,
                    sort=sort,
                    limit=args.limit,
                    labels=not args.no_labels,
                    **({"page_size": args.page_size} if args.page_size else {}),
                )
    except KeyboardInterrupt:
        _say("export", f"interrupted; nothing was written to {args.output}")
        return INTERRUPTED
    except (otyspd.OtysError, OSError) as exc:
        _say("export", exc)
        return FAILED
    print(f"wrote {info['rows']} rows to {info['path']}")
    return OK


def _export_usage_problem(args: argparse.Namespace) -> str | None:
    """The first mistake in the export options that needs no server to see."""
    if args.sandbox and args.records < 1:
        return "--records must be at least 1"
    if args.limit is not None and args.limit < 0:
        return "--limit must not be negative"
    if args.page_size is not None and args.page_size < 1:
        return "--page-size must be at least 1"
    suffix = Path(args.output).suffix.lower()
    if suffix not in (".parquet", ".csv", ".jsonl"):
        return f"-o {args.output}: the file must end in .parquet, .csv or .jsonl"
    if args.where:
        return _where_problem(args.where)
    return None


_OPERATOR_CHARS = "=<>!~"


def _where_problem(text: str) -> str | None:
    """A clause of ``--where`` that would not mean what it says, explained.

    Each clause must be ``field OP value`` with one operator: ``a==3``,
    ``a=>3`` or ``=3`` are refused here rather than sent as something else.
    """
    from otyspd.errors import InvalidInput
    from otyspd.query import _WHERE_OPS, _split_clauses

    try:
        clauses = _split_clauses(text)
    except InvalidInput as exc:
        return str(exc)
    for clause in clauses:
        at = next((i for i, ch in enumerate(clause) if ch in _OPERATOR_CHARS), None)
        if at is None:
            continue  # parse_where explains a clause without an operator
        op = next(o for o in _WHERE_OPS if clause.startswith(o, at))
        field = clause[:at].strip()
        value = clause[at + len(op) :].strip()
        if not field:
            return f"--where: {clause!r} names no field before {op!r}"
        if not all(ch.isalnum() or ch in "._" for ch in field):
            return f"--where: {clause!r}: {field!r} is not a field name"
        if value[:1] and value[0] in _OPERATOR_CHARS:
            return (
                f"--where: {clause!r} has a stray {value[0]!r} after {op!r}; "
                "the operators are = != > >= < <= ~ !~ (write statusId=3, not "
                "statusId==3)"
            )
        # parse_where takes the first operator of its list found anywhere
        chosen = next(o for o in _WHERE_OPS if o in clause)
        if (chosen, clause.index(chosen)) != (op, at):
            return (
                f"--where: {clause!r}: the value contains {chosen!r}, which --where "
                f"cannot tell apart from the operator {op!r}; use session.read_list "
                "with F(...) for such values"
            )
    return None


def _attach_dash_values(argv: list[str]) -> list[str]:
    """Glue ``--sort -entryDateTime`` into ``--sort=-entryDateTime``.

    argparse would take a value starting with '-' for an option of its own.
    A long option (``--what``) or a short one (``-o``) after ``--sort`` is left
    alone, so that a missing sort value is reported as such.
    """
    out: list[str] = []
    for i, arg in enumerate(argv):
        descending = arg.startswith("-") and not arg.startswith("--") and len(arg) > 2
        if i and argv[i - 1] == "--sort" and descending:
            out[-1] = f"--sort={arg}"
            continue
        out.append(arg)
    return out


_SUBCOMMANDS = [_add_demo, _add_sandbox, _add_export]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``otyspd`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="otyspd", description="pandas toolkit for the OTYS web services"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    args = parser.parse_args(
        _attach_dash_values(list(sys.argv[1:] if argv is None else argv))
    )
    if not getattr(args, "run", None):
        parser.print_help()
        return USAGE
    try:
        return args.run(args)
    except KeyboardInterrupt:
        _say(args.command, "interrupted")
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
