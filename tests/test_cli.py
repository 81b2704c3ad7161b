"""The ``otyspd`` command: mistakes are one line on stderr and a clear exit status."""

from __future__ import annotations

import socket
import sys

import pytest

from otyspd import cli, paging
from otyspd.cli import _attach_dash_values, main

WHAT = ["--what", "Person.lastName,statusId"]


def export_argv(out, *extra, records="60"):
    return [
        "export",
        "Candidate",
        "--sandbox",
        "--records",
        records,
        *WHAT,
        "-o",
        str(out),
        *extra,
    ]


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # a message, not a traceback
    assert "Traceback" not in err
    return lines[0]


def test_a_doubled_equals_sign_is_a_usage_error_not_a_query(
    tmp_path, capsys, monkeypatch
):
    connected = []
    monkeypatch.setattr("otyspd.connect", lambda *a, **k: connected.append(1))
    out = tmp_path / "x.csv"
    assert main(export_argv(out, "--where", "statusId==3")) == cli.USAGE
    line = one_line(capsys.readouterr().err)
    assert "stray '='" in line and "statusId=3" in line
    for where, message in [
        ("=3", "names no field"),
        ("status Id=3", "not a field name"),
        ("statusId=>3", "stray '>'"),
        ("Person.lastName~%>%", "cannot tell apart"),
        ("nope", "no operator"),
        ("statusId=3,", "empty clause"),
    ]:
        assert main(export_argv(out, "--where", where)) == cli.USAGE
        assert message in one_line(capsys.readouterr().err)
    assert connected == [] and not out.exists()


def test_where_clauses_that_parse_as_written_are_accepted():
    for where in [
        "statusId=3",
        "statusId=1|2,Person.lastName!=x",
        "entryDateTime>=2024-01-01",
        "Person.emailPrimary~%@example.com",
        "Person.lastName='a=b'",
        "note~%!%",
        "Person.lastName=",
    ]:
        assert cli._where_problem(where) is None, where


@pytest.mark.parametrize(
    ("extra", "records", "message"),
    [
        ((), "0", "--records must be at least 1"),
        (("--limit", "-1"), "60", "--limit must not be negative"),
        (("--page-size", "0"), "60", "--page-size must be at least 1"),
    ],
)
def test_bad_export_numbers_are_usage_errors(tmp_path, capsys, extra, records, message):
    assert main(export_argv(tmp_path / "x.csv", *extra, records=records)) == cli.USAGE
    assert message in one_line(capsys.readouterr().err)


def test_an_unsupported_or_unwritable_output_is_a_message(tmp_path, capsys):
    assert main(export_argv(tmp_path / "x.xlsx")) == cli.USAGE
    assert ".parquet, .csv or .jsonl" in one_line(capsys.readouterr().err)
    # /proc takes no new files (even from root)
    assert main(export_argv("/proc/otyspd-out.csv")) == cli.FAILED
    assert "cannot write in the folder '/proc'" in one_line(capsys.readouterr().err)
    assert main(export_argv(tmp_path / "no" / "x.csv")) == cli.FAILED
    assert "does not exist" in one_line(capsys.readouterr().err)


def test_parquet_without_pyarrow_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert main(export_argv(tmp_path / "x.parquet")) == cli.USAGE
    line = one_line(capsys.readouterr().err)
    assert "pip install 'otyspd[parquet]'" in line and "pyarrow" in line
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_an_export_is_one_line_exit_130_and_no_file(
    tmp_path, capsys, monkeypatch
):
    real = paging._Writer.write
    seen = []

    def interrupted(self, frame):
        seen.append(self.path)
        real(self, frame)
        raise KeyboardInterrupt

    monkeypatch.setattr(paging._Writer, "write", interrupted)
    out = tmp_path / "big.csv"
    assert main(export_argv(out, "--page-size", "20")) == cli.INTERRUPTED
    line = one_line(capsys.readouterr().err)
    assert line == f"otyspd export: interrupted; nothing was written to {out}"
    assert seen and list(tmp_path.iterdir()) == []


def test_an_export_of_no_rows_writes_a_csv_with_its_header(tmp_path, capsys):
    out = tmp_path / "none.csv"
    assert main(export_argv(out, "--where", "Person.lastName=zzzz-nobody")) == cli.OK
    assert out.read_text() == "uid,Person.lastName,statusId\n"
    assert "wrote 0 rows" in capsys.readouterr().out


def test_sandbox_port_out_of_range_or_taken_is_a_message(capsys):
    assert main(["sandbox", "--port", "99999"]) == cli.USAGE
    assert "--port must be between 0 and 65535" in one_line(capsys.readouterr().err)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["sandbox", "--port", str(port), "--records", "5"]) == cli.FAILED
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in one_line(err)


def test_a_descending_sort_field_is_kept_as_the_sort_value():
    assert _attach_dash_values(["export", "C", "--sort", "-entryDateTime,uid"]) == [
        "export",
        "C",
        "--sort=-entryDateTime,uid",
    ]


@pytest.mark.parametrize("option", ["--what", "-o"])
def test_an_option_after_a_bare_sort_is_not_taken_as_its_value(option):
    argv = ["export", "C", "--sort", option, "x.csv"]
    assert _attach_dash_values(argv) == argv
