"""Write-back against the sandbox, over real HTTP on 127.0.0.1.

One sandbox serves the module; every test takes records no other test touched.
"""

from __future__ import annotations

import copy
import json
import unicodedata

import numpy as np
import pandas as pd
import pytest

import otyspd
from otyspd import writeback
from otyspd.errors import InvalidInput
from otyspd.sandbox import serve

SERVICE = "CandidateService"
COLUMNS = [
    "Person.firstName",
    "Person.lastName",
    "Person.phoneMobile",
    "Person.birthdate",
    "personalNr",
    "statusId",
    "userId",
    "acceptTermsTs",
    "availableAt",
    "ownsCar",
]


@pytest.fixture(scope="module")
def srv():
    with serve(records=300, rate_limit=None, seed=3) as server:
        yield server


@pytest.fixture(scope="module")
def session(srv):
    opened = otyspd.connect(
        srv.api_key,
        srv.url,
        rate_limit=None,
        username=srv.username,
        password=srv.password,
    )
    yield opened
    opened.logout()


@pytest.fixture(scope="module")
def fresh_uids(session):
    """Hands out uids no test has used yet."""
    every = session.read_list("Candidate", ["uid"]).index.tolist()
    return iter(every)


def read(session, uids, *, labels=True):
    """The rows of ``uids`` exactly as read_list gives them."""
    frame = session.read_list("Candidate", COLUMNS, labels=labels)
    return frame.loc[list(uids)]


def take(fresh_uids, n):
    return [next(fresh_uids) for _ in range(n)]


def calls(srv, verb: str) -> int:
    return srv.stats["calls"].get(f"{SERVICE}.{verb}", 0)


def stored(srv, uids):
    """The records as the server holds them, minus lastModified (it moves on every write)."""
    out = {}
    for uid in uids:
        record = srv.get(SERVICE, uid)
        record.pop("lastModified", None)
        out[uid] = record
    return out


class Spy:
    """Records every call write-back sends through ``session.multi``."""

    def __init__(self, session, monkeypatch):
        self.calls: list[tuple[str, list]] = []
        real = session.multi

        def multi(batch, **kwargs):
            items = batch.values() if isinstance(batch, dict) else batch
            self.calls.extend(copy.deepcopy([tuple(call) for call in items]))
            return real(batch, **kwargs)

        monkeypatch.setattr(session, "multi", multi)

    def updates(self) -> dict[str, dict]:
        return {p[0]: p[1] for m, p in self.calls if m.endswith(".update")}

    def wire(self) -> str:
        return json.dumps(self.calls, allow_nan=False)


@pytest.fixture
def spy(session, monkeypatch):
    return Spy(session, monkeypatch)


# ---- missing values and concurrent edits ---------------------------------------------


def test_cleared_cells_go_as_null_and_no_nan_is_ever_sent(
    srv, session, fresh_uids, spy
):
    uids = take(fresh_uids, 3)
    original = read(session, uids)
    edited = original.copy()
    edited.loc[uids[0], "Person.birthdate"] = pd.NaT
    edited.loc[uids[1], "Person.phoneMobile"] = pd.NA
    edited.loc[uids[2], "availableAt"] = pd.NaT
    edited.loc[uids[2], "personalNr"] = None
    report = writeback.write_back(session, SERVICE, original, edited)

    assert report.ok, report.frame
    sent = spy.wire()
    for junk in ("NaN", "NaT", '"nan"', '"None"', "<NA>", "Infinity"):
        assert junk not in sent
    assert spy.updates() == report.payloads
    assert report.payloads[uids[0]] == {"Person": {"birthdate": None}}
    assert srv.get(SERVICE, uids[0])["Person"]["birthdate"] is None
    assert srv.get(SERVICE, uids[1])["Person"]["phoneMobile"] is None


def test_only_the_edited_field_is_sent_and_a_colleagues_edit_survives(
    srv, session, fresh_uids, spy
):
    (uid,) = take(fresh_uids, 1)
    srv.edit(SERVICE, uid, {"Person": {"phoneMobile": None}})
    original = read(session, [uid])
    # Meanwhile a recruiter sets the phone in the OTYS UI.
    srv.edit(SERVICE, uid, {"Person": {"phoneMobile": "0612345678"}})
    edited = original.copy()
    edited["Person.phoneMobile"] = edited["Person.phoneMobile"].astype(object)
    edited.loc[uid, "Person.phoneMobile"] = np.nan  # NaN vs NaN: no change
    edited.loc[uid, "Person.firstName"] = "Bea"
    report = session.write_back("Candidate", original, edited)

    assert spy.updates() == {uid: {"Person": {"firstName": "Bea"}}}
    assert report.counts == {"written": 1}
    record = srv.get(SERVICE, uid)
    assert record["Person"]["phoneMobile"] == "0612345678"
    assert record["Person"]["firstName"] == "Bea"


# ---- partial failures ----------------------------------------------------------------


def test_an_invalid_payload_stops_everything_before_the_first_write(
    srv, session, fresh_uids
):
    uids = take(fresh_uids, 5)
    original = read(session, uids, labels=["statusId"])
    edited = original.copy()
    edited["userId"] = edited["userId"].astype(object)
    for uid in uids:
        edited.loc[uid, "Person.firstName"] = "Fixed"
    edited.loc[uids[2], "userId"] = "seven"
    before = calls(srv, "update")
    with pytest.raises(InvalidInput, match=rf"uid '{uids[2]}', column 'userId'"):
        writeback.write_back(session, SERVICE, original, edited)
    assert calls(srv, "update") == before
    assert all(srv.get(SERVICE, u)["Person"]["firstName"] != "Fixed" for u in uids)


def test_a_refused_record_fails_with_the_servers_message_and_the_rest_land(
    srv, session, fresh_uids, monkeypatch
):
    uids = take(fresh_uids, 5)
    original = read(session, uids, labels=["statusId"])
    edited = original.copy()
    for uid in uids:
        edited.loc[uid, "personalNr"] = f"P-{uid[:6]}"
    # Without field definitions an option id cannot be checked before sending:
    # no such user, so the server refuses the record.
    monkeypatch.setattr(session, "field_defs", lambda service: None)
    edited.loc[uids[3], "userId"] = 999
    report = writeback.write_back(session, SERVICE, original, edited, batch_size=2)

    ledger = {
        uid: set(report.frame.loc[report.frame["uid"] == uid, "status"]) for uid in uids
    }
    assert ledger == {
        uids[0]: {"written"},
        uids[1]: {"written"},
        uids[2]: {"written"},
        uids[3]: {"failed"},
        uids[4]: {"written"},
    }
    error = report.failed["error"].iloc[0]
    assert "999" in error and "userId" in error
    for uid in uids:
        holds = srv.get(SERVICE, uid)["personalNr"] == f"P-{uid[:6]}"
        assert holds == (uid != uids[3])

    # The fixed re-run sends only the record still missing.
    edited.loc[uids[3], "userId"] = 2
    before = calls(srv, "update")
    again = writeback.write_back(session, SERVICE, original, edited)
    assert calls(srv, "update") == before + 1
    assert again.counts == {"written": 2, "unchanged": 4}


@pytest.mark.parametrize("after_write", [False, True])
def test_dropped_batches_are_read_back_so_the_report_matches_the_server(
    srv, session, fresh_uids, after_write
):
    uids = take(fresh_uids, 24)
    original = read(session, uids)
    edited = original.copy()
    for n, uid in enumerate(uids):
        edited.loc[uid, "Person.lastName"] = f"Dropped{n}"
    srv.configure(
        drop_rate=0.35,
        fault_seed=11,
        fault_after_write=after_write,
        fault_methods=["MultiService.execute"],
    )
    try:
        report = writeback.write_back(session, SERVICE, original, edited, batch_size=3)
    finally:
        srv.configure(drop_rate=0.0, fault_after_write=False, fault_methods=None)
    assert srv.stats["faults"]["drop"] > 0

    statuses = dict(zip(report.frame["uid"], report.frame["status"], strict=True))
    assert set(statuses.values()) <= {"written", "failed"}
    notes = report.frame["error"].dropna().tolist()
    if after_write:
        # Batches that ran but lost their answer were confirmed by reading them back.
        assert any(note.startswith("confirmed by reading it back") for note in notes)
    else:
        assert any(note.startswith("not applied") for note in notes)
    for n, uid in enumerate(uids):
        landed = srv.get(SERVICE, uid)["Person"]["lastName"] == f"Dropped{n}"
        assert landed == (statuses[uid] == "written"), uid

    rerun = writeback.write_back(session, SERVICE, original, edited, batch_size=3)
    assert rerun.counts.get("written", 0) == list(statuses.values()).count("failed")
    assert all(
        srv.get(SERVICE, u)["Person"]["lastName"] == f"Dropped{n}"
        for n, u in enumerate(uids)
    )


# ---- conflicts -----------------------------------------------------------------------


def test_a_concurrent_edit_is_a_conflict_and_force_overrides_it(
    srv, session, fresh_uids
):
    uids = take(fresh_uids, 2)
    original = read(session, uids)
    srv.edit(SERVICE, uids[0], {"Person": {"firstName": "Colleague"}})
    edited = original.copy()
    edited.loc[uids[0], "Person.firstName"] = "Mine"
    edited.loc[uids[0], "personalNr"] = "N-1"
    edited.loc[uids[1], "Person.firstName"] = "Mine too"
    report = writeback.write_back(session, SERVICE, original, edited)

    assert report.counts == {"written": 2, "conflict": 1}
    conflict = report.conflicts.iloc[0]
    assert (conflict["uid"], conflict["field"]) == (uids[0], "Person.firstName")
    assert conflict["server"] == "Colleague"
    assert srv.get(SERVICE, uids[0])["Person"]["firstName"] == "Colleague"
    assert srv.get(SERVICE, uids[0])["personalNr"] == "N-1"

    forced = writeback.write_back(session, SERVICE, original, edited, force=True)
    assert forced.counts == {"written": 1, "unchanged": 2}
    assert srv.get(SERVICE, uids[0])["Person"]["firstName"] == "Mine"


# ---- undo, re-runs, dry runs, journal ------------------------------------------------


def test_undo_restores_the_server_exactly(srv, session, fresh_uids, tmp_path):
    uids = take(fresh_uids, 4)
    before = stored(srv, uids)
    original = read(session, uids)
    edited = original.copy()
    edited.loc[uids[0], "Person.firstName"] = "Undo"
    edited.loc[uids[0], "statusId"] = next(
        label
        for label in original["statusId"].cat.categories
        if label != original.loc[uids[0], "statusId"]
    )
    birthdate = original.loc[uids[1], "Person.birthdate"]
    edited.loc[uids[1], "Person.birthdate"] = (
        pd.Timestamp("1999-09-09") if pd.isna(birthdate) else pd.NaT
    )
    edited.loc[uids[1], "ownsCar"] = original.loc[uids[1], "ownsCar"] is not True
    edited.loc[uids[2], "acceptTermsTs"] = pd.Timestamp("2024-06-30 23:30", tz="UTC")
    edited.loc[uids[3], "availableAt"] = pd.Timestamp("2030-01-31")
    path = tmp_path / "journal.jsonl"
    report = writeback.write_back(session, SERVICE, original, edited, journal=path)
    assert report.counts == {"written": 6}
    assert srv.get(SERVICE, uids[2])["acceptTermsTs"] == "2024-07-01 01:30:00"
    assert stored(srv, uids) != before

    undone = report.undo()
    assert undone.counts == {"written": 6}
    assert stored(srv, uids) == before

    # Again from the journal file, after the same edit: same result.
    redo = writeback.write_back(session, SERVICE, original, edited, journal=path)
    assert redo.counts == {"written": 6}
    undone = writeback.undo_journal(session, path)
    assert undone.counts == {"written": 6}
    assert stored(srv, uids) == before


def test_undo_leaves_a_cell_changed_again_since_the_write(srv, session, fresh_uids):
    uids = take(fresh_uids, 2)
    original = read(session, uids)
    edited = original.copy()
    edited["Person.firstName"] = ["First", "Second"]
    report = writeback.write_back(session, SERVICE, original, edited)
    srv.edit(SERVICE, uids[1], {"Person": {"firstName": "Later"}})
    undone = report.undo()
    assert undone.counts == {"written": 1, "conflict": 1}
    assert (
        srv.get(SERVICE, uids[0])["Person"]["firstName"]
        == original.loc[uids[0], "Person.firstName"]
    )
    assert srv.get(SERVICE, uids[1])["Person"]["firstName"] == "Later"


def test_a_second_run_sends_nothing(srv, session, fresh_uids):
    uids = take(fresh_uids, 3)
    original = read(session, uids)
    edited = original.copy()
    edited["personalNr"] = ["R1", "R2", "R3"]
    assert writeback.write_back(session, SERVICE, original, edited).counts == {
        "written": 3
    }
    before = calls(srv, "update")
    again = writeback.write_back(session, SERVICE, original, edited)
    assert again.counts == {"unchanged": 3}
    assert calls(srv, "update") == before


def test_a_dry_run_writes_nothing_and_its_plan_applies_minus_exclusions(
    srv, session, fresh_uids
):
    uids = take(fresh_uids, 2)
    original = read(session, uids)
    edited = original.copy()
    edited["personalNr"] = ["D1", "D2"]
    edited.loc[uids[1], "Person.firstName"] = "Dry"
    before = {verb: calls(srv, verb) for verb in ("update", "add", "delete")}
    plan = session.write_back("Candidate", original, edited, dry_run=True)
    assert {verb: calls(srv, verb) for verb in before} == before
    assert plan.counts == {"planned": 3}
    assert plan.payloads == {
        uids[0]: {"personalNr": "D1"},
        uids[1]: {"Person": {"firstName": "Dry"}, "personalNr": "D2"},
    }

    report = plan.apply(exclude=[(uids[1], "Person.firstName")])
    assert report.counts == {"written": 2, "skipped": 1}
    assert srv.get(SERVICE, uids[1])["personalNr"] == "D2"
    assert srv.get(SERVICE, uids[1])["Person"]["firstName"] != "Dry"


def test_the_journal_file_holds_before_and_after_and_no_secrets(
    srv, session, fresh_uids, tmp_path
):
    uids = take(fresh_uids, 2)
    original = read(session, uids)
    edited = original.copy()
    edited["personalNr"] = ["J1", "J2"]
    path = tmp_path / "journal.jsonl"
    report = writeback.write_back(session, SERVICE, original, edited, journal=path)
    text = path.read_text(encoding="utf-8")
    assert srv.api_key not in text
    assert session._transport.token not in text
    lines = [json.loads(line) for line in text.splitlines()]
    outcome = [e for e in lines if e["status"] != "sending"]
    assert [(e["uid"], e["field"], e["after"], e["status"]) for e in outcome] == [
        (uids[0], "personalNr", "J1", "written"),
        (uids[1], "personalNr", "J2", "written"),
    ]
    assert [e["before"] for e in outcome] == [
        original.loc[u, "personalNr"]
        if pd.notna(original.loc[u, "personalNr"])
        else None
        for u in uids
    ]
    assert all(e["service"] == SERVICE and e["run"] == report.run_id for e in lines)
    assert report.journal == outcome


# ---- value rules ---------------------------------------------------------------------


def test_label_columns_are_written_as_ids(srv, session, fresh_uids):
    (uid,) = take(fresh_uids, 1)
    original = read(session, [uid])
    labels = original.attrs["otyspd"]["labels"]["statusId"]
    target_id, target = next(
        (i, label)
        for i, label in labels.items()
        if label != original.loc[uid, "statusId"]
    )
    edited = original.copy()
    edited.loc[uid, "statusId"] = target
    report = writeback.write_back(session, SERVICE, original, edited)
    assert report.payloads == {uid: {"statusId": int(target_id)}}
    assert srv.get(SERVICE, uid)["statusId"] == int(target_id)


def test_text_equal_in_nfc_and_five_against_five_point_zero_are_no_change(
    srv, session, fresh_uids
):
    (uid,) = take(fresh_uids, 1)
    srv.edit(SERVICE, uid, {"Person": {"firstName": "Zo\u00eb"}})
    original = read(session, [uid], labels=["statusId"])
    edited = original.copy()
    edited.loc[uid, "Person.firstName"] = unicodedata.normalize("NFD", "Zo\u00eb")
    edited["userId"] = edited["userId"].astype("float64")
    assert edited.loc[uid, "Person.firstName"] != original.loc[uid, "Person.firstName"]
    assert session.diff("Candidate", original, edited).empty
    before = srv.stats["calls"].copy()
    report = writeback.write_back(session, SERVICE, original, edited)
    assert report.counts == {}
    assert srv.stats["calls"] == before


def test_adds_and_deletes_only_when_allowed(srv, session, fresh_uids):
    uids = take(fresh_uids, 2)
    original = read(session, uids)
    new = pd.DataFrame(
        {"Person.firstName": ["Nieuwe"], "Person.lastName": ["Kandidaat"]},
        index=pd.Index(["new1"], name="uid"),
    )
    edited = pd.concat([original.drop(index=[uids[1]]), new])
    with pytest.raises(InvalidInput, match="allow_add=True"):
        writeback.write_back(session, SERVICE, original, edited)
    plan = writeback.write_back(
        session,
        SERVICE,
        original,
        edited,
        allow_add=True,
        allow_delete=True,
        dry_run=True,
    )
    assert plan.counts == {"planned": 3}
    report = writeback.write_back(
        session, SERVICE, original, edited, allow_add=True, allow_delete=True
    )
    assert report.counts == {"added": 2, "deleted": 1}
    assert "added=2 cells in 1 record" in repr(report)
    added = report.frame.loc[report.frame["status"] == "added", "uid"].iloc[0]
    assert srv.get(SERVICE, added)["Person"]["lastName"] == "Kandidaat"
    with pytest.raises(Exception, match="not found"):
        srv.get(SERVICE, uids[1])

    # Undo deletes the added record; the deleted one cannot come back, and says so.
    with pytest.warns(writeback.UndoWarning, match="cannot bring back"):
        undone = report.undo()
    assert undone.counts == {"deleted": 1, "skipped": 1}
    lost = undone.frame[undone.frame["status"] == "skipped"].iloc[0]
    assert lost["uid"] == uids[1] and "cannot bring back" in lost["error"]
    with pytest.raises(Exception, match="not found"):
        srv.get(SERVICE, added)
    (line,) = [e for e in report.journal if e["op"] == "delete"]
    assert line["before"]["Person.lastName"] == original.loc[uids[1], "Person.lastName"]


def test_a_frame_read_in_english_is_written_with_english_labels(
    srv, session, fresh_uids
):
    (uid,) = take(fresh_uids, 1)
    with session.language("en"):
        original = read(session, [uid])
    assert original.attrs["otyspd"]["language"] == "en"
    target = "Placed" if original.loc[uid, "statusId"] != "Placed" else "Active"
    edited = original.copy()
    edited.loc[uid, "statusId"] = target
    report = writeback.write_back(session, SERVICE, original, edited)
    assert report.counts == {"written": 1}
    assert srv.get(SERVICE, uid)["statusId"] == (4 if target == "Placed" else 2)


def test_read_only_fields_from_the_field_definitions_are_refused(
    srv, session, fresh_uids
):
    (uid,) = take(fresh_uids, 1)
    frame = session.read_list("Candidate", ["entryDateTime", "internalId", "age"])
    original = frame.loc[[uid]]
    edited = original.copy()
    edited.loc[uid, "entryDateTime"] = pd.Timestamp(
        "2020-01-01 10:00", tz="Europe/Amsterdam"
    )
    edited.loc[uid, "internalId"] = 1
    edited.loc[uid, "age"] = 20
    before = calls(srv, "update")
    with pytest.raises(InvalidInput) as caught:
        session.write_back("Candidate", original, edited)
    assert [p.split(": ", 1)[0] for p in caught.value.problems] == [
        f"uid '{uid}', column 'entryDateTime'",
        f"uid '{uid}', column 'internalId'",
        f"uid '{uid}', column 'age'",
    ]
    assert "not updatable" in caught.value.problems[0]
    assert calls(srv, "update") == before


# ---- input that must stop a write before it starts -----------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        ("{uid}", "Person.firstname"),
        ("{uid}", "firstName"),
        "{UID}",
        ("{uid} ", "Person.firstName"),
    ],
    ids=["field-case", "field-short", "uid-case", "uid-space"],
)
def test_a_mistyped_exclude_sends_nothing(srv, session, fresh_uids, entry):
    (uid,) = take(fresh_uids, 1)
    original = read(session, [uid])
    edited = original.copy()
    edited.loc[uid, "Person.firstName"] = "DoNotSend"
    if isinstance(entry, tuple):
        entry = (entry[0].format(uid=uid), entry[1])
    else:
        entry = entry.format(UID=uid.upper() if uid.upper() != uid else f"0{uid}")
    before = calls(srv, "update")
    with pytest.raises(InvalidInput, match="exclude entry") as caught:
        session.write_back("Candidate", original, edited, exclude=[entry])
    assert repr(entry) in caught.value.problems[0]
    assert calls(srv, "update") == before
    assert srv.get(SERVICE, uid)["Person"]["firstName"] != "DoNotSend"


def test_blank_text_a_lone_surrogate_and_a_mistyped_option_send_nothing(
    srv, session, fresh_uids
):
    uids = take(fresh_uids, 2)
    original = read(session, uids)
    edited = original.copy()
    edited["Person.firstName"] = edited["Person.firstName"].astype(object)
    edited.loc[uids[0], "Person.lastName"] = "   "
    edited.loc[uids[1], "Person.firstName"] = "\ud800"
    before = calls(srv, "update")
    with pytest.raises(InvalidInput) as caught:
        session.write_back("Candidate", original, edited)
    assert [p.split(": ", 1)[0] for p in caught.value.problems] == [
        f"uid '{uids[1]}', column 'Person.firstName'",
        f"uid '{uids[0]}', column 'Person.lastName'",
    ]
    assert "lone surrogate" in caught.value.problems[0]
    assert "may not be empty" in caught.value.problems[1]
    with pytest.raises(InvalidInput, match="did you mean 'force'"):
        session.write_back("Candidate", original, original.copy(), forse=True)
    assert calls(srv, "update") == before


def test_unknown_option_ids_of_a_frame_without_labels_are_refused_before_sending(
    srv, session, fresh_uids
):
    uids = take(fresh_uids, 2)
    original = read(session, uids, labels=False)
    edited = original.copy()
    edited.loc[uids[0], "statusId"] = 99
    edited.loc[uids[1], "userId"] = 12345
    before, updates = stored(srv, uids), calls(srv, "update")
    with pytest.raises(InvalidInput) as caught:
        writeback.write_back(session, SERVICE, original, edited, dry_run=True)
    problems = caught.value.problems
    assert problems[0].startswith(
        f"uid {uids[0]!r}, column 'statusId': 99 is not an option id of this field "
        "(valid ids: 1 ("
    )
    assert problems[1].startswith(f"uid {uids[1]!r}, column 'userId': 12345 is not")
    assert calls(srv, "update") == updates and stored(srv, uids) == before
