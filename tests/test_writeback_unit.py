"""Write-back on hand-made frames against an in-memory fake of the OWS calls it makes."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from otyspd import writeback
from otyspd.errors import BadRequest, InvalidInput, NotFound, OwsError, TransportError
from otyspd.frames import nest_changes as nest
from otyspd.journal import read_journal
from otyspd.schema import FieldDef

# ---- a fake session: getDetail / update / add / delete on a dict of records ----------


@dataclass
class Result:
    ok: bool
    data: Any = None
    error: OwsError | None = None


def _merge(target: dict, patch: dict) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _select(record: dict, what: dict) -> dict:
    out = {}
    for key, want in what.items():
        if key in record:
            value = record[key]
            out[key] = _select(value, want) if isinstance(want, dict) else value
    return out


class FakeSession:
    """Just enough of Session for write-back: multi, options and field_defs."""

    def __init__(self, records, *, options=None, defs=None, reject=None):
        self.store = copy.deepcopy(records)
        self.opts = options or {}
        self.defs = defs
        self.reject = reject or {}
        self.requests: list[list[tuple[str, list]]] = []
        self.drop = None  # "before" or "after": the next write batch gets no answer
        self.language_code = None

    def options(self, service, fields):
        return {f: self.opts[f] for f in fields if f in self.opts}

    def field_defs(self, service):
        return self.defs

    def writes(self) -> list[tuple[str, list]]:
        return [c for r in self.requests for c in r if not c[0].endswith("getDetail")]

    def _one(self, method: str, params: list) -> Any:
        verb = method.rsplit(".", 1)[1]
        if verb == "getDetail":
            uid, what = params
            if uid not in self.store:
                raise NotFound("Record not found")
            return _select(self.store[uid], what)
        if verb == "update":
            uid, patch = params
            if uid in self.reject:
                raise BadRequest(self.reject[uid])
            json.dumps(patch, allow_nan=False)
            _merge(self.store[uid], patch)
            return {}
        if verb == "add":
            uid = str(9000 + len(self.store))
            self.store[uid] = {"uid": uid, **copy.deepcopy(params[0])}
            return uid
        if verb == "delete":
            del self.store[params[0]]
            return {}
        raise AssertionError(method)

    def multi(self, calls, *, idempotent=None, chunk=None):
        self.requests.append(copy.deepcopy(calls))
        is_write = not all(m.endswith("getDetail") for m, _ in calls)
        if is_write and self.drop == "before":
            self.drop = None
            raise TransportError("connection dropped")
        out = []
        for method, params in calls:
            try:
                out.append(Result(True, self._one(method, params)))
            except OwsError as exc:
                out.append(Result(False, None, exc))
        if is_write and self.drop == "after":
            self.drop = None
            raise TransportError("connection dropped")
        return out


STATUS = {"1": "New", "2": "Active", "3": "Hired"}


def _records(n: int = 5) -> dict[str, dict]:
    return {
        str(i): {
            "uid": str(i),
            "Person": {"firstName": f"Name{i}", "birthdate": f"1990-01-0{i}"},
            "email": f"p{i}@example.org",
            "phone": None,
            "statusId": 1,
            "score": 5,
            "entryDateTime": "2024-03-01 09:30:00",
        }
        for i in range(1, n + 1)
    }


def _frame(records: dict[str, dict]) -> pd.DataFrame:
    """The frame a read would give, with its attrs, built by hand."""
    uids = list(records)
    rows = [records[u] for u in uids]
    df = pd.DataFrame(
        {
            "Person.firstName": pd.array(
                [r["Person"]["firstName"] for r in rows], "string"
            ),
            "Person.birthdate": pd.to_datetime(
                [r["Person"]["birthdate"] for r in rows]
            ),
            "email": pd.array([r["email"] for r in rows], "string"),
            "phone": pd.array([r["phone"] for r in rows], "string"),
            "statusId": pd.Categorical(
                [STATUS[str(r["statusId"])] for r in rows],
                categories=list(STATUS.values()),
            ),
            "score": pd.array([r["score"] for r in rows], "Int64"),
            "entryDateTime": pd.to_datetime(
                [r["entryDateTime"] for r in rows]
            ).tz_localize("Europe/Amsterdam"),
        },
        index=pd.Index(uids, name="uid"),
    )
    df.attrs["otyspd"] = {
        "service": "CandidateService",
        "language": None,
        "types": {
            "Person.firstName": "string",
            "Person.birthdate": "date",
            "email": "string",
            "phone": "string",
            "statusId": "integer",
            "score": "integer",
            "entryDateTime": "datetime",
        },
        "labels": {"statusId": {"1": "New", "2": "Active"}},
        "absent": {},
        "zero_dates": {},
    }
    return df


@pytest.fixture
def setup():
    records = _records()
    session = FakeSession(records, options={"statusId": STATUS})
    original = _frame(records)
    return session, original, original.copy()


# ---- diff ----------------------------------------------------------------------------


def test_diff_lists_changed_cells_sorted_by_uid_then_column(setup):
    session, original, edited = setup
    edited.loc["3", "score"] = 8
    edited.loc["1", "email"] = "new@example.org"
    edited.loc["1", "Person.firstName"] = "Ann"
    changes = session_diff(session, original, edited)
    assert list(changes.columns) == ["uid", "field", "old", "new"]
    assert changes[["uid", "field"]].values.tolist() == [
        ["1", "Person.firstName"],
        ["1", "email"],
        ["3", "score"],
    ]
    assert changes.loc[1, "old"] == "p1@example.org"
    assert changes.loc[1, "new"] == "new@example.org"


def session_diff(session, original, edited):
    return writeback.diff(session, "Candidate", original, edited)


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA, pd.NaT, float("nan")])
def test_missing_against_missing_is_no_change_whatever_its_spelling(setup, missing):
    session, original, edited = setup
    edited["phone"] = edited["phone"].astype(object)
    edited.loc["2", "phone"] = missing
    assert session_diff(session, original, edited).empty


def test_five_equals_five_point_zero(setup):
    session, original, edited = setup
    edited["score"] = edited["score"].astype("float64")
    assert session_diff(session, original, edited).empty
    edited.loc["2", "score"] = 5.5
    assert session_diff(session, original, edited)["uid"].tolist() == ["2"]


def test_text_is_compared_in_nfc():
    records = _records(2)
    records["1"]["Person"]["firstName"] = "Zo\u00eb"  # composed ë
    session = FakeSession(records, options={"statusId": STATUS})
    original = _frame(records)
    edited = original.copy()
    edited.loc["1", "Person.firstName"] = "Zoe\u0308"  # e + combining diaeresis
    assert session_diff(session, original, edited).empty


def test_datetimes_compare_as_instants_and_dates_as_dates(setup):
    session, original, edited = setup
    # The same instant in UTC: 09:30 in Amsterdam in March is 08:30 UTC.
    edited["entryDateTime"] = edited["entryDateTime"].dt.tz_convert("UTC")
    edited["Person.birthdate"] = pd.Series(
        [d.date() for d in edited["Person.birthdate"]], index=edited.index, dtype=object
    )
    assert session_diff(session, original, edited).empty
    edited.loc["4", "entryDateTime"] = pd.Timestamp(
        "2024-03-01 09:31", tz="Europe/Amsterdam"
    )
    assert session_diff(session, original, edited)["field"].tolist() == [
        "entryDateTime"
    ]


def test_absent_and_zero_date_cells_still_missing_are_no_change():
    records = _records(3)
    original = _frame(records)
    original.loc["2", "Person.birthdate"] = pd.NaT
    original.attrs["otyspd"]["zero_dates"] = {"Person.birthdate": ["2"]}
    original.loc["3", "email"] = pd.NA
    original.attrs["otyspd"]["absent"] = {"email": ["3"]}
    session = FakeSession(records)
    edited = original.copy()
    edited["email"] = edited["email"].astype(object)
    edited.loc["3", "email"] = None
    assert session_diff(session, original, edited).empty


def test_labels_compare_as_labels(setup):
    session, original, edited = setup
    edited["statusId"] = edited["statusId"].astype(str).astype(object)
    assert session_diff(session, original, edited).empty
    edited.loc["2", "statusId"] = "Active"
    changes = session_diff(session, original, edited)
    assert changes[["old", "new"]].values.tolist() == [["New", "Active"]]


def test_diff_leaves_the_original_alone(setup):
    session, original, edited = setup
    before = original.copy()
    edited.loc["1", "email"] = "x@example.org"
    writeback.write_back(session, "Candidate", original, edited)
    pd.testing.assert_frame_equal(original, before)
    assert original.attrs == before.attrs


# ---- payloads ------------------------------------------------------------------------


def test_only_changed_fields_are_sent_nested_and_json_safe(setup):
    session, original, edited = setup
    edited["phone"] = edited["phone"].astype(object)
    edited.loc["1", "phone"] = np.nan  # still missing: no change
    edited.loc["1", "email"] = "b@example.org"
    edited.loc["2", "Person.firstName"] = "Bea"
    edited.loc["2", "statusId"] = "Active"
    edited.loc["3", "Person.birthdate"] = pd.NaT  # cleared
    edited.loc["3", "score"] = pd.NA
    edited.loc["4", "entryDateTime"] = pd.Timestamp("2024-07-01 12:00", tz="UTC")
    edited.loc["5", "Person.birthdate"] = pd.Timestamp("2001-12-31")
    report = writeback.write_back(session, "Candidate", original, edited)
    assert report.payloads == {
        "1": {"email": "b@example.org"},
        "2": {"Person": {"firstName": "Bea"}, "statusId": 2},
        "3": {"Person": {"birthdate": None}, "score": None},
        "4": {"entryDateTime": "2024-07-01 14:00:00"},
        "5": {"Person": {"birthdate": "2001-12-31"}},
    }
    sent = json.dumps(session.writes(), allow_nan=False)
    for junk in ("NaN", "NaT", '"nan"', '"None"', "<NA>"):
        assert junk not in sent
    assert report.counts == {"written": 7}


def test_big_integers_keep_their_precision():
    records = _records(1)
    session = FakeSession(records)
    original = _frame(records)
    edited = original.copy()
    edited.loc["1", "score"] = 9007199254740993
    report = writeback.write_back(session, "Candidate", original, edited)
    assert report.payloads["1"] == {"score": 9007199254740993}
    assert isinstance(report.payloads["1"]["score"], int)


def test_a_label_typed_by_the_user_is_looked_up_in_the_option_list(setup):
    session, original, edited = setup
    edited["statusId"] = edited["statusId"].astype(object)
    edited.loc["5", "statusId"] = (
        "Hired"  # not in attrs labels: only in the option list
    )
    report = writeback.write_back(session, "Candidate", original, edited)
    assert report.payloads == {"5": {"statusId": 3}}
    assert session.store["5"]["statusId"] == 3


# ---- validation ----------------------------------------------------------------------


def test_every_problem_is_listed_and_nothing_is_sent(setup):
    session, original, edited = setup
    session.opts = {"statusId": {**STATUS, "4": "Active"}}  # "Active" now has two ids
    original.attrs["otyspd"]["labels"]["statusId"] = {
        "1": "New",
        "2": "Active",
        "4": "Active",
    }
    edited["score"] = edited["score"].astype(object)
    edited["statusId"] = edited["statusId"].astype(object)
    edited["Person.birthdate"] = edited["Person.birthdate"].astype(object)
    edited.loc["1", "score"] = "seven"
    edited.loc["2", "statusId"] = "Retired"
    edited.loc["3", "statusId"] = "Active"
    edited.loc["4", "Person.birthdate"] = "next tuesday"
    edited.loc["5", "score"] = 2.5
    edited["extra"] = "x"
    with pytest.raises(InvalidInput) as caught:
        writeback.write_back(session, "Candidate", original, edited)
    problems = caught.value.problems
    assert any("'extra' is not in original" in p for p in problems)
    edited = edited.drop(columns="extra")
    with pytest.raises(InvalidInput) as caught:
        writeback.write_back(session, "Candidate", original, edited)
    text = "\n".join(caught.value.problems)
    assert "uid '1', column 'score': expected a number" in text
    assert "uid '2', column 'statusId': the label 'Retired' is not an option" in text
    assert (
        "uid '3', column 'statusId': the label 'Active' belongs to several options"
        in text
    )
    assert "uid '4', column 'Person.birthdate'" in text and "not a date" in text
    assert "uid '5', column 'score': expected a whole number" in text
    assert session.requests == []


def test_identifiers_and_read_only_fields_cannot_be_updated():
    records = _records(2)
    session = FakeSession(records, defs={"email": FieldDef("email", updatable=False)})
    original = _frame(records)
    original["internalId"] = pd.array([11, 12], "Int64")
    edited = original.copy()
    edited.loc["1", "internalId"] = 99
    edited.loc["2", "email"] = "x@example.org"
    with pytest.raises(InvalidInput) as caught:
        writeback.write_back(session, "Candidate", original, edited)
    text = "\n".join(caught.value.problems)
    assert "uid '1', column 'internalId': cannot be updated" in text
    assert (
        "uid '2', column 'email': cannot be updated" in text and "not updatable" in text
    )
    # Unchanged read-only columns are no problem.
    assert (
        writeback.write_back(session, "Candidate", original, original.copy()).counts
        == {}
    )


def test_duplicate_uids_and_a_non_uid_index_are_refused(setup):
    session, original, edited = setup
    doubled = pd.concat([edited, edited.iloc[[0]]])
    with pytest.raises(InvalidInput, match="uid '1' appears more than once"):
        writeback.write_back(session, "Candidate", original, doubled)
    with pytest.raises(InvalidInput, match="index must be the records' uids"):
        writeback.write_back(session, "Candidate", original.reset_index(), edited)
    with pytest.raises(InvalidInput, match=r"use \.set_index\('uid'\)"):
        writeback.diff(session, "Candidate", original, edited.reset_index())
    assert session.requests == []


def test_a_frame_read_from_another_service_is_refused(setup):
    session, original, edited = setup
    with pytest.raises(
        InvalidInput, match="read from CandidateService, not from VacancyService"
    ):
        writeback.write_back(session, "Vacancy", original, edited)


# ---- conflicts, failures, re-runs ----------------------------------------------------


def test_a_concurrent_edit_of_another_field_survives(setup):
    """only the edited field is sent; the colleague's phone stays."""
    session, original, edited = setup
    session.store["1"]["phone"] = "0612345678"
    edited.loc["1", "email"] = "b@example.org"
    report = writeback.write_back(session, "Candidate", original, edited)
    assert report.payloads == {"1": {"email": "b@example.org"}}
    assert session.store["1"]["phone"] == "0612345678"
    assert session.store["1"]["email"] == "b@example.org"


def test_a_cell_changed_on_the_server_is_a_conflict_unless_forced(setup):
    session, original, edited = setup
    session.store["2"]["email"] = "colleague@example.org"
    edited.loc["2", "email"] = "mine@example.org"
    edited.loc["2", "Person.firstName"] = "Bo"
    report = writeback.write_back(session, "Candidate", original, edited)
    assert report.counts == {"written": 1, "conflict": 1}
    conflict = report.conflicts.iloc[0]
    assert (conflict["field"], conflict["server"]) == ("email", "colleague@example.org")
    assert session.store["2"]["email"] == "colleague@example.org"
    assert session.store["2"]["Person"]["firstName"] == "Bo"
    assert not report.ok

    forced = writeback.write_back(session, "Candidate", original, edited, force=True)
    assert forced.counts == {"written": 1, "unchanged": 1}
    assert session.store["2"]["email"] == "mine@example.org"
    assert "forced over" in forced.frame.set_index("field").loc["email", "error"]


def test_a_deleted_record_is_a_conflict(setup):
    session, original, edited = setup
    del session.store["3"]
    edited.loc["3", "email"] = "gone@example.org"
    report = writeback.write_back(session, "Candidate", original, edited)
    assert report.counts == {"conflict": 1}
    assert "no longer exists" in report.frame.loc[0, "error"]


def test_a_refused_record_fails_with_the_server_message_and_the_rest_are_written(setup):
    """a per-uid ledger, and a re-run sends only what is still missing."""
    session, original, edited = setup
    session.reject = {"4": "Unknown option id 77 for statusId"}
    for uid in "12345":
        edited.loc[uid, "email"] = f"fixed{uid}@example.org"
    report = writeback.write_back(session, "Candidate", original, edited, batch_size=2)
    ledger = dict(zip(report.frame["uid"], report.frame["status"], strict=True))
    assert ledger == {
        "1": "written",
        "2": "written",
        "3": "written",
        "4": "failed",
        "5": "written",
    }
    assert report.failed["error"].tolist() == ["Unknown option id 77 for statusId"]

    session.reject = {}
    session.requests.clear()
    again = writeback.write_back(session, "Candidate", original, edited, batch_size=2)
    assert again.counts == {"written": 1, "unchanged": 4}
    assert [c[1][0] for c in session.writes()] == ["4"]

    session.requests.clear()
    third = writeback.write_back(session, "Candidate", original, edited)
    assert third.counts == {"unchanged": 5}
    assert session.writes() == []


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_batch_without_an_answer_is_read_back_not_guessed(setup, when):
    session, original, edited = setup
    for uid in "12345":
        edited.loc[uid, "score"] = 10 + int(uid)
    session.drop = when
    report = writeback.write_back(session, "Candidate", original, edited, batch_size=2)
    statuses = dict(zip(report.frame["uid"], report.frame["status"], strict=True))
    landed = {u: session.store[u]["score"] == 10 + int(u) for u in "12345"}
    assert {u: s == "written" for u, s in statuses.items()} == landed
    expected_first = "written" if when == "after" else "failed"
    assert statuses["1"] == statuses["2"] == expected_first
    assert statuses["3"] == statuses["5"] == "written"
    # Updates were never repeated blindly: each uid was sent at most once.
    sent = [c[1][0] for c in session.writes()]
    assert sorted(sent) == ["1", "2", "3", "4", "5"]

    rerun = writeback.write_back(session, "Candidate", original, edited)
    assert all(session.store[u]["score"] == 10 + int(u) for u in "12345")
    assert rerun.counts.get("written", 0) == (2 if when == "before" else 0)


# ---- dry run and apply ---------------------------------------------------------------


def test_a_dry_run_reads_but_writes_nothing_and_can_be_applied_minus_exclusions(setup):
    session, original, edited = setup
    edited.loc["1", "email"] = "a@example.org"
    edited.loc["2", "email"] = "b@example.org"
    edited.loc["2", "score"] = 9
    plan = writeback.write_back(session, "Candidate", original, edited, dry_run=True)
    assert session.writes() == []
    assert plan.counts == {"planned": 3}
    assert plan.payloads == {
        "1": {"email": "a@example.org"},
        "2": {"email": "b@example.org", "score": 9},
    }
    assert repr(plan) == "WriteReport(dry run of CandidateService: planned=3)"
    with pytest.raises(InvalidInput, match="nothing to undo"):
        plan.undo()

    report = plan.apply(exclude=[("2", "email")])
    assert report.counts == {"written": 2, "skipped": 1}
    assert session.store["2"]["email"] == "p2@example.org"
    assert session.store["2"]["score"] == 9
    with pytest.raises(InvalidInput, match="not a plan"):
        report.apply()


def test_exclude_on_write_back_takes_pairs_and_whole_records(setup):
    session, original, edited = setup
    edited.loc["1", "email"] = "a@example.org"
    edited.loc["2", "email"] = "b@example.org"
    edited.loc["2", "score"] = 9
    report = writeback.write_back(session, "Candidate", original, edited, exclude=["2"])
    assert report.counts == {"written": 1, "skipped": 2}
    assert report.payloads == {"1": {"email": "a@example.org"}}


# ---- adds and deletes ----------------------------------------------------------------


def test_new_rows_need_allow_add_and_unknown_uids_are_refused(setup):
    session, original, edited = setup
    new = pd.DataFrame(
        {"Person.firstName": ["Nina"], "email": ["nina@example.org"], "score": [3]},
        index=pd.Index(["new1"], name="uid"),
    )
    grown = pd.concat([edited, new])
    with pytest.raises(InvalidInput, match=r"new rows \('new1'\) need allow_add=True"):
        writeback.write_back(session, "Candidate", original, grown)
    stray = pd.concat([edited, new.rename(index={"new1": "777"})])
    with pytest.raises(InvalidInput, match="uid '777' is not in original"):
        writeback.write_back(session, "Candidate", original, stray)

    plan = writeback.write_back(
        session, "Candidate", original, grown, allow_add=True, dry_run=True
    )
    assert plan.counts == {"planned": 3}
    report = writeback.write_back(session, "Candidate", original, grown, allow_add=True)
    assert report.counts == {"added": 3}
    uid = report.frame["uid"].iloc[0]
    assert session.store[uid]["email"] == "nina@example.org"
    assert session.store[uid]["score"] == 3


def test_rows_left_out_are_skipped_unless_deletes_are_allowed(setup):
    session, original, edited = setup
    kept = edited.drop(index=["4"])
    report = writeback.write_back(session, "Candidate", original, kept)
    assert report.counts == {"skipped": 1}
    assert "allow_delete=True" in report.frame.loc[0, "error"]
    assert "4" in session.store

    plan = writeback.write_back(
        session, "Candidate", original, kept, allow_delete=True, dry_run=True
    )
    assert plan.counts == {"planned": 1} and "4" in session.store
    report = writeback.write_back(
        session, "Candidate", original, kept, allow_delete=True
    )
    assert report.counts == {"deleted": 1}
    assert "4" not in session.store


# ---- journal and undo ----------------------------------------------------------------


def test_the_journal_file_records_before_and_after_per_batch(setup, tmp_path):
    session, original, edited = setup
    session.store["3"]["email"] = "moved@example.org"
    edited.loc["1", "email"] = "a@example.org"
    edited.loc["3", "email"] = "c@example.org"
    path = tmp_path / "journal.jsonl"
    report = writeback.write_back(
        session, "Candidate", original, edited, journal=path, force=True
    )
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["uid"], e["status"]) for e in lines] == [
        ("1", "sending"),
        ("3", "sending"),
        ("1", "written"),
        ("3", "written"),
    ]
    assert lines[-1]["before"] == "moved@example.org"
    assert lines[-1]["after"] == "c@example.org"
    assert {e["service"] for e in lines} == {"CandidateService"}
    assert all(e["ts"] and e["run"] == report.run_id for e in lines)
    assert [e["status"] for e in read_journal(path)] == ["written", "written"]


def test_undo_restores_the_server_exactly_and_protects_later_edits(setup, tmp_path):
    session, original, edited = setup
    before = copy.deepcopy(session.store)
    edited.loc["1", "email"] = "a@example.org"
    edited.loc["2", "statusId"] = "Active"
    edited.loc["3", "Person.birthdate"] = pd.NaT
    edited.loc["4", "entryDateTime"] = pd.NaT
    report = writeback.write_back(session, "Candidate", original, edited)
    assert report.counts == {"written": 4}
    undone = report.undo()
    assert undone.counts == {"written": 4}
    assert session.store == before

    # Write again, let a colleague change one cell, undo: that cell is left alone.
    path = tmp_path / "j.jsonl"
    report = writeback.write_back(session, "Candidate", original, edited, journal=path)
    session.store["1"]["email"] = "colleague@example.org"
    undone = writeback.undo_journal(session, path)
    assert undone.counts == {"written": 3, "conflict": 1}
    assert session.store["1"]["email"] == "colleague@example.org"
    assert session.store["2"]["statusId"] == 1


def test_report_repr_is_short_and_deterministic(setup):
    session, original, edited = setup
    edited.loc["1", "email"] = "a@example.org"
    report = writeback.write_back(session, "Candidate", original, edited)
    assert repr(report) == "WriteReport(CandidateService: written=1)"
    assert "<table" in report._repr_html_()
    assert list(report.frame.columns) == [
        "uid",
        "field",
        "old",
        "new",
        "status",
        "error",
        "server",
    ]


def test_bad_batch_sizes_are_refused(setup):
    session, original, edited = setup
    with pytest.raises(InvalidInput, match="batch_size"):
        writeback.write_back(session, "Candidate", original, edited, batch_size=0)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_undo_journal_refuses_a_bad_batch_size_before_sending(
    setup, tmp_path, batch_size
):
    session, original, edited = setup
    path = tmp_path / "j.jsonl"
    edited.loc["1", "email"] = "a@example.org"
    writeback.write_back(session, "Candidate", original, edited, journal=path)
    sent = len(session.requests)
    with pytest.raises(InvalidInput, match="batch_size must be a positive whole"):
        writeback.undo_journal(session, path, batch_size=batch_size)
    assert len(session.requests) == sent
    assert session.store["1"]["email"] == "a@example.org"


def test_canonical_refuses_infinities_and_reads_server_shapes():
    with pytest.raises(ValueError, match="not a finite number"):
        writeback.canonical(math.inf, "float")
    assert writeback.canonical("0000-00-00", "date", lenient=True) is None
    assert writeback.canonical("1", "boolean", lenient=True) is True
    assert writeback.canonical("12", "integer", lenient=True) == 12
    # User input that lost its type is taken when it is plainly that type.
    assert writeback.canonical("-12", "integer") == -12
    assert writeback.canonical("True", "boolean") is True
    for loose in ["12.0", " 12", "1_000", "\u0661\u0662", "twelve"]:
        with pytest.raises(ValueError):
            writeback.canonical(loose, "integer")


def test_updated_moves_only_confirmed_cells_into_the_baseline(setup):
    """the baseline snapshot follows only what the server confirmed."""
    session, original, edited = setup
    session.reject = {"2": "Field 'email' may not be empty"}
    edited.loc["1", "email"] = "a@example.org"
    edited.loc["2", "email"] = "b@example.org"
    edited.loc["3", "statusId"] = "Hired"
    report = writeback.write_back(session, "Candidate", original, edited)
    baseline = report.updated(original)
    assert baseline.loc["1", "email"] == "a@example.org"
    assert baseline.loc["2", "email"] == "p2@example.org"
    assert baseline.loc["3", "statusId"] == "Hired"
    assert original.loc["1", "email"] == "p1@example.org"
    session.reject = {}
    session.requests.clear()
    rest = writeback.write_back(session, "Candidate", baseline, edited)
    assert rest.counts == {"written": 1}
    assert [c[1][0] for c in session.writes()] == ["2"]


def test_a_plan_lists_new_records_under_their_row_label(setup):
    session, original, edited = setup
    new = pd.DataFrame(
        {"email": ["n@example.org"]}, index=pd.Index(["new-a"], name="uid")
    )
    plan = writeback.write_back(
        session,
        "Candidate",
        original,
        pd.concat([edited, new]),
        allow_add=True,
        dry_run=True,
    )
    assert plan.payloads == {"new-a": {"email": "n@example.org"}}
    assert session.writes() == []


def test_field_definitions_guard_empty_values_and_adds():
    records = _records(2)
    defs = {
        "Person.firstName": FieldDef(
            "Person.firstName", not_empty=True, obligatory=True
        ),
        "score": FieldDef("score", "integer", insertable=False),
        "email": FieldDef("email"),
    }
    session = FakeSession(records, defs=defs)
    original = _frame(records)
    edited = original.copy()
    edited.loc["1", "Person.firstName"] = ""
    new = pd.DataFrame(
        {"email": ["n@example.org"], "score": [1]}, index=pd.Index([None])
    )
    with pytest.raises(InvalidInput) as caught:
        writeback.write_back(
            session, "Candidate", original, pd.concat([edited, new]), allow_add=True
        )
    text = "\n".join(caught.value.problems)
    assert "uid '1', column 'Person.firstName': may not be empty" in text
    assert "new row 'new#1', column 'score': cannot be set on add" in text
    assert "new row 'new#1' lacks obligatory fields: Person.firstName" in text
    assert session.requests == []


def test_a_frame_without_read_notes_is_handled_by_its_dtypes(setup):
    session, original, _ = setup
    original.attrs = {}
    edited = original.copy()
    edited.loc["1", "statusId"] = "Hired"  # mapped through the option list
    edited.loc["2", "Person.birthdate"] = pd.Timestamp("1980-05-05")
    edited.loc["3", "score"] = 6
    report = writeback.write_back(session, "Candidate", original, edited)
    assert report.payloads == {
        "1": {"statusId": "3"},
        "2": {"Person": {"birthdate": "1980-05-05"}},
        "3": {"score": 6},
    }
    assert report.counts == {"written": 3}


def test_a_journal_cut_short_by_a_crash_still_undoes_what_landed(setup, tmp_path):
    session, original, edited = setup
    edited.loc["1", "email"] = "a@example.org"
    edited.loc["2", "email"] = "b@example.org"
    path = tmp_path / "j.jsonl"
    writeback.write_back(session, "Candidate", original, edited, journal=path)
    # Keep only the intent lines, and half of an outcome line: as if the process died.
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    entries = read_journal(path)
    assert [e["status"] for e in entries] == ["sending", "sending"]
    session.store["2"]["email"] = "p2@example.org"  # as if uid 2's write never landed
    undone = writeback.undo_journal(session, path)
    assert undone.counts == {"written": 1, "unchanged": 1}
    assert session.store["1"]["email"] == "p1@example.org"


def test_progress_bars_can_be_asked_for(setup, capsys):
    session, original, edited = setup
    edited.loc["1", "email"] = "a@example.org"
    writeback.write_back(session, "Candidate", original, edited, progress=True)
    assert "Writing CandidateService" in capsys.readouterr().err


# ---- exclude entries must name a change ----------------------------------------------


@pytest.mark.parametrize(
    "entry, hint",
    [
        (("1", "Email"), "did you mean 'email'?"),
        (("1", "mail"), "did you mean 'email'?"),
        (("1", "score"), "its changed fields: email"),
        (("1 ", "email"), "did you mean '1'?"),
        ("9", "has no change here"),
        ("3", "has no change here"),  # a row of the frame, but nothing changed in it
    ],
)
def test_an_exclude_entry_that_matches_no_change_is_refused_before_anything_is_sent(
    setup, entry, hint
):
    session, original, edited = setup
    edited.loc["1", "email"] = "a@example.org"
    edited.loc["2", "email"] = "b@example.org"
    with pytest.raises(InvalidInput, match="exclude entry") as caught:
        writeback.write_back(
            session, "Candidate", original, edited, exclude=[("2", "email"), entry]
        )
    (problem,) = caught.value.problems
    assert problem.startswith(f"exclude entry {entry!r}") and hint in problem
    assert session.requests == []

    plan = writeback.write_back(session, "Candidate", original, edited, dry_run=True)
    with pytest.raises(InvalidInput, match="match no change"):
        plan.apply(exclude=[entry])
    assert session.writes() == []
    assert session.store["1"]["email"] == "p1@example.org"


def test_every_unmatched_exclude_entry_is_named_with_the_frames_problems(setup):
    session, original, edited = setup
    edited["score"] = edited["score"].astype(object)
    edited.loc["1", "email"] = "a@example.org"
    edited.loc["2", "score"] = "seven"
    with pytest.raises(InvalidInput) as caught:
        writeback.write_back(
            session,
            "Candidate",
            original,
            edited,
            exclude=[("1", "Person.firstname"), "1x"],
        )
    text = "\n".join(caught.value.problems)
    assert "uid '2', column 'score': expected a number" in text
    assert "exclude entry ('1', 'Person.firstname')" in text
    assert "exclude entry '1x'" in text
    assert session.requests == []


def test_excluding_a_change_that_is_not_planned_is_fine(setup):
    session, original, edited = setup
    edited.loc["1", "email"] = "a@example.org"
    edited.loc["2", "email"] = "b@example.org"
    session.store["2"]["email"] = "colleague@example.org"
    plan = writeback.write_back(session, "Candidate", original, edited, dry_run=True)
    assert plan.counts == {"planned": 1, "conflict": 1}
    report = plan.apply(exclude=plan.conflicts)
    assert report.counts == {"written": 1, "skipped": 1}
    kept = edited.drop(index=["5"])
    report = writeback.write_back(
        session, "Candidate", original, kept, exclude=[("2", "email"), "5"]
    )
    assert report.counts == {"unchanged": 1, "skipped": 2}
    assert session.store["2"]["email"] == "colleague@example.org"


# ---- undo after adds and deletes -----------------------------------------------------


def test_undo_after_a_delete_says_the_record_stays_gone_and_how_to_add_it_again(
    setup, tmp_path
):
    session, original, edited = setup
    gone = copy.deepcopy(session.store["4"])
    path = tmp_path / "j.jsonl"
    report = writeback.write_back(
        session,
        "Candidate",
        original,
        edited.drop(index=["4"]),
        allow_delete=True,
        journal=path,
    )
    assert report.counts == {"deleted": 1}

    with pytest.warns(writeback.UndoWarning, match=r"1 deleted record\(s\) \('4'\)"):
        undone = report.undo()
    assert undone.counts == {"skipped": 1}
    assert repr(undone) == "WriteReport(CandidateService: skipped=1)"
    row = undone.frame.iloc[0]
    assert (row["uid"], row["field"], row["status"]) == ("4", "(record)", "skipped")
    assert "cannot bring back a deleted record" in row["error"]
    assert "'before' of its delete line in the journal" in row["error"]
    assert "4" not in session.store
    with pytest.warns(writeback.UndoWarning):
        assert writeback.undo_journal(session, path).counts == {"skipped": 1}

    # The advice holds: the delete line carries the read values, as the server takes them.
    (line,) = [e for e in read_journal(path) if e["op"] == "delete"]
    assert line["before"] == {
        "Person.firstName": "Name4",
        "Person.birthdate": "1990-01-04",
        "email": "p4@example.org",
        "statusId": 1,
        "score": 5,
        "entryDateTime": "2024-03-01 09:30:00",
    }
    (result,) = session.multi([("CandidateService.add", [nest(line["before"])])])
    back = session.store[result.data]
    assert {k: v for k, v in back.items() if k != "uid"} == {
        k: v for k, v in gone.items() if k not in ("uid", "phone")
    }


def test_undo_deletes_the_records_the_write_added_and_counts_name_records(setup):
    session, original, edited = setup
    new = pd.DataFrame(
        {"Person.firstName": ["Nina"], "email": ["nina@example.org"], "score": [3]},
        index=pd.Index(["new1"], name="uid"),
    )
    report = writeback.write_back(
        session, "Candidate", original, pd.concat([edited, new]), allow_add=True
    )
    assert report.counts == {"added": 3}
    assert repr(report) == "WriteReport(CandidateService: added=3 cells in 1 record)"
    (uid,) = set(report.frame["uid"])
    undone = report.undo()
    assert undone.counts == {"deleted": 1}
    assert uid not in session.store
    assert undone.journal[0]["before"] == {
        "Person.firstName": "Nina",
        "email": "nina@example.org",
        "score": 3,
    }


# ---- values the server cannot take, and unknown options ------------------------------


def test_blank_text_huge_integers_and_lone_surrogates_are_refused_with_row_and_column():
    records = _records(3)
    defs = {
        "Person.firstName": FieldDef("Person.firstName", not_empty=True),
        "email": FieldDef("email"),
        "score": FieldDef("score", "integer"),
    }
    session = FakeSession(records, defs=defs)
    original = _frame(records)
    edited = original.copy()
    edited["score"] = edited["score"].astype(object)
    edited["email"] = edited["email"].astype(
        object
    )  # Arrow-backed text refuses surrogates
    edited.loc["1", "Person.firstName"] = " \t "
    edited.loc["1", "score"] = 10**20
    edited.loc["2", "score"] = -(2**63) - 1
    edited.loc["2", "email"] = "a\ud800b"
    edited.loc["3", "score"] = 2**63 - 1  # the largest that fits: fine
    new = pd.DataFrame(
        {"Person.firstName": ["   "], "email": ["\udfff"]},
        index=pd.Index(["new1"], name="uid"),
        dtype=object,
    )
    with pytest.raises(InvalidInput) as caught:
        writeback.write_back(
            session, "Candidate", original, pd.concat([edited, new]), allow_add=True
        )
    problems = caught.value.problems
    assert [p.split(": ", 1)[0] for p in problems] == [
        "uid '1', column 'Person.firstName'",
        "uid '2', column 'email'",
        "uid '1', column 'score'",
        "uid '2', column 'score'",
        "new row 'new1', column 'Person.firstName'",
        "new row 'new1', column 'email'",
        "new row 'new1' has no values to add",
    ]
    assert "text of only spaces counts as empty" in problems[0]
    assert "lone surrogate '\\ud800' at position 1" in problems[1]
    assert "outside the range" in problems[2] and "64-bit" in problems[2]
    assert "outside the range" in problems[3]
    assert "cannot be encoded as UTF-8: a lone surrogate '\\udfff'" in problems[5]
    assert session.requests == []


@pytest.mark.parametrize("where", ["write_back", "apply", "undo", "undo_journal"])
def test_an_unknown_option_is_named_with_the_valid_ones(setup, tmp_path, where):
    session, original, edited = setup
    edited.loc["1", "email"] = "a@example.org"
    with pytest.raises(InvalidInput) as caught:
        if where == "write_back":
            writeback.write_back(session, "Candidate", original, edited, forse=True)
        elif where == "apply":
            plan = writeback.write_back(
                session, "Candidate", original, edited, dry_run=True
            )
            plan.apply(forse=True)
        elif where == "undo":
            writeback.write_back(session, "Candidate", original, edited).undo(
                forse=True
            )
        else:
            path = tmp_path / "j.jsonl"
            writeback.write_back(session, "Candidate", original, edited, journal=path)
            writeback.undo_journal(session, path, forse=True)
    text = str(caught.value)
    assert f"{where}() got unknown options: 'forse' (did you mean 'force'?)" in text
    assert "valid options:" in text and "force" in text.split("valid options:")[1]
    expected = (
        "a@example.org" if where in ("undo", "undo_journal") else "p1@example.org"
    )
    assert session.store["1"]["email"] == expected


# ---- frames whose values changed spelling but not meaning ----------------------------


def _with_empty_texts():
    """Records 1-2 hold empty text in ``phone``, 3 holds null, 4 holds a number."""
    records = _records(4)
    records["1"]["phone"] = ""
    records["2"]["phone"] = ""
    records["4"]["phone"] = "06-12"
    session = FakeSession(records, options={"statusId": STATUS})
    return session, _frame(records)


@pytest.mark.parametrize("typed", [True, False])
def test_empty_text_and_missing_are_the_same_in_a_text_field_both_ways(typed):
    session, original = _with_empty_texts()
    if not typed:  # a frame that lost its notes and dtypes: an untyped text column
        original.attrs = {}
        original["phone"] = original["phone"].astype(object)
    as_missing = original.copy()
    as_missing["phone"] = as_missing["phone"].astype(object).replace("", np.nan)
    as_empty = original.copy()
    as_empty["phone"] = as_empty["phone"].astype(object).fillna("")
    for before, after in [(original, as_missing), (original, as_empty)]:
        assert session_diff(session, before, after).empty
        assert session_diff(session, after, before).empty
        report = writeback.write_back(session, "Candidate", before, after)
        assert report.counts == {} and session.writes() == []


def test_clearing_text_to_empty_or_missing_is_a_change_sent_as_null():
    session, original = _with_empty_texts()
    edited = original.copy()
    edited["phone"] = edited["phone"].astype(object)
    edited.loc["4", "phone"] = ""
    assert session_diff(session, original, edited)[
        ["uid", "old", "new"]
    ].values.tolist() == [["4", "06-12", ""]]
    report = writeback.write_back(session, "Candidate", original, edited)
    assert report.payloads == {"4": {"phone": None}}
    assert session.store["4"]["phone"] is None
    # Undo puts the text back; an empty text the server held is restored as it was.
    report.undo()
    assert session.store["4"]["phone"] == "06-12"


def test_a_csv_round_trip_of_empty_text_plans_only_the_real_edit(tmp_path):
    session, original = _with_empty_texts()
    original[["Person.firstName", "email", "phone"]].to_csv(tmp_path / "c.csv")
    reloaded = pd.read_csv(tmp_path / "c.csv", index_col="uid", dtype={"uid": str})
    reloaded.loc["2", "email"] = "new@example.org"
    report = writeback.write_back(
        session, "Candidate", original, reloaded, dry_run=True
    )
    assert report.payloads == {"2": {"email": "new@example.org"}}


@pytest.mark.parametrize("how", ["dtype=str", "object"])
def test_untouched_cells_of_a_frame_that_lost_its_types_are_no_change(tmp_path, how):
    records = _records(3)
    records["1"]["Person"]["firstName"] = "0612"  # text of digits stays text
    for uid, ok, rate in [("1", True, 2.5), ("2", False, 3.0), ("3", None, None)]:
        records[uid].update(ok=ok, rate=rate)
    session = FakeSession(records, options={"statusId": STATUS})
    original = _frame(records)
    original["ok"] = pd.array([True, False, pd.NA], "boolean")
    original["rate"] = pd.array([2.5, 3.0, None], "Float64")
    original.attrs["otyspd"]["types"].update({"ok": "boolean", "rate": "float"})
    if how == "dtype=str":
        original.to_csv(tmp_path / "c.csv")
        edited = pd.read_csv(tmp_path / "c.csv", index_col="uid", dtype=str)
    else:
        edited = original.astype(object)
        edited["ok"] = pd.Series([True, np.False_, None], edited.index, object)
        edited["score"] = pd.Series([5.0, 5, np.int64(5)], edited.index, object)
    assert session_diff(session, original, edited).empty
    edited.loc["2", "score"] = "7"
    edited.loc["2", "ok"] = "true"
    edited.loc["1", "rate"] = "-1.5e1"
    report = writeback.write_back(session, "Candidate", original, edited)
    assert report.payloads == {
        "1": {"rate": -15.0},
        "2": {"score": 7, "ok": True},
    }


def test_wrong_types_in_columns_that_lost_their_types_get_one_hint(setup):
    session, original, edited = setup
    edited = edited.astype(object)
    edited.loc["1", "score"] = "5.5"
    edited.loc["2", "score"] = "seven"
    with pytest.raises(InvalidInput) as caught:
        writeback.write_back(session, "Candidate", original, edited)
    text = str(caught.value)
    assert "uid '1', column 'score': expected a number, got str '5.5'" in text
    assert "uid '2', column 'score': expected a number, got str 'seven'" in text
    assert text.count("lost their types") == 1
    assert "edited = edited.astype(original.dtypes)" in text
    # The hint names the cure that works.
    edited = original.astype(object).astype(original.dtypes)
    assert session_diff(session, original, edited).empty
    # A wrong value in a column that kept its dtype gets no hint.
    _, original, edited = setup
    edited["score"] = edited["score"].astype(object)
    original["score"] = original["score"].astype(object)
    edited.loc["2", "score"] = "seven"
    with pytest.raises(InvalidInput) as caught:
        writeback.write_back(session, "Candidate", original, edited)
    assert "lost their types" not in str(caught.value)
    assert session.writes() == []


def test_option_ids_of_a_frame_read_without_labels_are_checked_before_sending():
    records = _records(3)
    defs = {
        "statusId": FieldDef("statusId", "integer", has_options=True),
        "score": FieldDef("score", "integer"),
        "Person.firstName": FieldDef("Person.firstName"),
    }
    many = {str(i): f"Status {i}" for i in range(1, 16)}
    session = FakeSession(records, options={"statusId": many}, defs=defs)
    asked = []
    lookup = session.options
    session.options = lambda service, fields: (
        asked.append(fields) or lookup(service, fields)
    )
    original = _frame(records)[["Person.firstName", "statusId", "score"]]
    original["statusId"] = pd.array([1, 1, 1], "Int64")
    original.attrs["otyspd"]["labels"] = {}
    edited = original.copy()
    edited.loc["1", "statusId"] = 99
    edited.loc["2", "statusId"] = 100
    edited.loc["3", "statusId"] = 3  # a valid id
    edited.loc["3", "score"] = 99  # no options: any number goes
    new = pd.DataFrame(
        {"Person.firstName": ["Ann"], "statusId": [77]},
        index=pd.Index(["new1"], name="uid"),
    )
    with pytest.raises(InvalidInput) as caught:
        writeback.write_back(
            session, "Candidate", original, pd.concat([edited, new]), allow_add=True
        )
    problems = caught.value.problems
    assert [p.split(": ", 1)[0] for p in problems] == [
        "uid '1', column 'statusId'",
        "uid '2', column 'statusId'",
        "new row 'new1', column 'statusId'",
    ]
    assert problems[0].endswith(
        "99 is not an option id of this field (valid ids: 1 (Status 1), "
        "2 (Status 2), 3 (Status 3), 4 (Status 4), 5 (Status 5), 6 (Status 6), "
        "7 (Status 7), 8 (Status 8), 9 (Status 9), 10 (Status 10), 11 (Status 11), "
        "12 (Status 12) and 3 more)"
    )
    assert session.writes() == [] and asked == [["statusId"]]
    report = writeback.write_back(
        session, "Candidate", original, edited.drop(index=["1", "2"])
    )
    assert report.payloads == {"3": {"statusId": 3, "score": 99}}


def test_a_zoned_timestamp_for_a_date_field_gives_its_own_calendar_date(setup):
    session, original, edited = setup
    edited["Person.birthdate"] = edited["Person.birthdate"].astype(object)
    edited.loc["1", "Person.birthdate"] = pd.Timestamp("1990-02-03", tz="UTC")
    edited.loc["2", "Person.birthdate"] = pd.Timestamp(
        "1990-02-03", tz="America/New_York"
    )
    # The date it already holds, given at midnight in Tokyo: no change.
    edited.loc["3", "Person.birthdate"] = pd.Timestamp("1990-01-03", tz="Asia/Tokyo")
    report = writeback.write_back(session, "Candidate", original, edited)
    assert report.payloads == {
        "1": {"Person": {"birthdate": "1990-02-03"}},
        "2": {"Person": {"birthdate": "1990-02-03"}},
    }
    edited.loc["4", "Person.birthdate"] = pd.Timestamp("1990-02-03 23:00", tz="UTC")
    edited.loc["5", "Person.birthdate"] = pd.Timestamp("1990-02-03 10:00")
    with pytest.raises(InvalidInput) as caught:
        writeback.write_back(session, "Candidate", original, edited)
    assert caught.value.problems == [
        "uid '4', column 'Person.birthdate': a date field cannot hold a time: "
        "Timestamp('1990-02-03 23:00:00+0000', tz='UTC') has the time 23:00:00 "
        "in its own time zone (UTC)",
        "uid '5', column 'Person.birthdate': a date field cannot hold a time: "
        "Timestamp('1990-02-03 10:00:00') has the time 10:00:00",
    ]
