import io

import pandas as pd

from otyspd.cli import main
from otyspd.demo import _matching_cells, clean_candidates, run_demo


def test_the_demo_writes_verifies_and_undoes_every_cleanup_change():
    out = io.StringIO()

    numbers = run_demo(records=150, seed=3, out=out)

    assert numbers["rows"] == 150
    assert numbers["changes"] > 0
    assert numbers["written"] == numbers["verified"] == numbers["restored"]
    assert numbers["written"] == numbers["changes"]
    text = out.getvalue()
    assert f"Read {numbers['rows']} candidates" in text
    assert "nothing was sent" in text


def test_the_demo_command_exits_zero_and_prints_no_secret(capsys):
    status = main(["demo", "--records", "80", "--seed", "2"])

    printed = capsys.readouterr()
    assert status == 0
    assert "Undo:" in printed.out
    assert "api_key" not in printed.out.lower()
    assert printed.err == ""


def test_the_demo_command_refuses_a_record_count_below_one(capsys):
    assert main(["demo", "--records", "0"]) == 2
    assert "--records must be at least 1" in capsys.readouterr().err


def test_cleanup_tidies_emails_and_spacing_and_keeps_missing_values():
    frame = pd.DataFrame(
        {
            "Person.firstName": pd.array(
                ["  jan ", "Anna  Lena", None], dtype="string"
            ),
            "Person.infix": pd.array(["van  der", None, "de"], dtype="string"),
            "Person.lastName": pd.array(["Vries", "BOS ", None], dtype="string"),
            "Person.emailPrimary": pd.array(
                [" Jan@Example.NL", None, "x@example.com"], dtype="string"
            ),
        },
        index=pd.Index(["a", "b", "c"], name="uid"),
    )

    edited = clean_candidates(frame)

    assert edited["Person.emailPrimary"].tolist()[::2] == [
        "jan@example.nl",
        "x@example.com",
    ]
    assert edited["Person.firstName"].tolist()[:2] == ["jan", "Anna Lena"]
    assert edited["Person.infix"].tolist()[0] == "van der"
    assert edited["Person.lastName"].tolist()[1] == "BOS"
    assert edited.isna().equals(frame.isna())
    assert frame.at["a", "Person.firstName"] == "  jan "
    assert (edited.dtypes == frame.dtypes).all()


def test_matching_cells_counts_a_value_that_went_missing_as_a_mismatch():
    strings = {"dtype": "string"}
    actual = pd.DataFrame(
        {"a": pd.array([pd.NA, "x", pd.NA], **strings)}, index=["1", "2", "3"]
    )
    expected = pd.DataFrame(
        {"a": pd.array(["v", "x", pd.NA], **strings)}, index=["1", "2", "3"]
    )
    changes = pd.DataFrame({"uid": ["1", "2", "3"], "field": ["a", "a", "a"]})

    assert _matching_cells(actual, expected, changes) == 2
    assert _matching_cells(expected, actual, changes) == 2
