"""Merged candidates: duplicate_info, surviving_ids (chains, cycles, unknown ids), merge_map."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from otyspd import duplicates
from otyspd.errors import BadRequest, InvalidInput, NotFound


def merge(when, src, dst):
    """One mergeHistory entry: (uid, internalId, personalNr) of source and destination."""
    return {
        "mergeDateTime": when,
        "idSource": src[1],
        "oidSource": src[0],
        "personalNrSource": src[2],
        "idDestination": dst[1],
        "oidDestination": dst[0],
        "personalNrDestination": dst[2],
    }


A = ("uA", 101, "P-A")
B = ("uB", 102, "P-B")
C = ("uC", 103, "P-C")
CHAIN = {  # A merged into B, later B into C; the server lists them keyed by idSource
    "102": merge("2024-06-02 10:00:00", B, C),
    "101": merge("2024-05-01 09:30:00", A, B),
}


def answer(history, survivor):
    return {
        "mergeHistory": history,
        "newCandidateId": str(survivor[1]),
        "newCandidateOuid": survivor[0],
        "newCandidatePersonalNr": survivor[2],
    }


@dataclass
class Result:
    ok: bool
    data: object = None
    error: Exception | None = None


class FakeSession:
    """retrieveDuplicateInfo from a table; NotFound for anything else."""

    def __init__(self, table):
        self.table = table
        self.calls: list = []
        self.batches: list = []

    def _answer(self, key):
        if key not in self.table:
            raise NotFound("Candidate not found", method="retrieveDuplicateInfo")
        value = self.table[key]
        if isinstance(value, Exception):
            raise value
        return value

    def call(self, method, *params):
        self.calls.append((method, params))
        return self._answer(params[0])

    def multi(self, calls, *, idempotent=None):
        self.batches.append(calls)
        out = []
        for method, params in calls:
            assert method == "CandidateService.retrieveDuplicateInfo"
            try:
                out.append(Result(True, self._answer(params[0])))
            except Exception as exc:
                out.append(Result(False, error=exc))
        return out


def chain_session():
    table = {key: answer(CHAIN, C) for key in ("uA", "101", "P-A", "uB", "102")}
    table["uC"] = answer([], C)
    table["103"] = answer([], C)
    return FakeSession(table)


def test_duplicate_info_types_and_sorts_the_history():
    info = duplicates.duplicate_info(chain_session(), "uA")

    assert (info.new_uid, info.new_internal_id, info.new_personal_nr) == (
        "uC",
        "103",
        "P-C",
    )
    assert info.merged
    history = info.history
    assert list(history.columns) == list(duplicates.HISTORY_COLUMNS)
    assert list(history["oidSource"]) == ["uA", "uB"]
    assert list(history["idSource"]) == ["101", "102"]
    assert str(history["idSource"].dtype) == "string"
    assert str(
        history["mergeDateTime"].dtype
    ) == "datetime64[us, Europe/Amsterdam]" or (
        str(history["mergeDateTime"].dt.tz) == "Europe/Amsterdam"
    )
    assert history["mergeDateTime"].iloc[0] == pd.Timestamp(
        "2024-05-01 09:30", tz="Europe/Amsterdam"
    )
    assert "uA" in repr(info) and "merges=2" in repr(info)


def test_a_record_without_merges_has_an_empty_history_and_its_own_ids():
    info = duplicates.duplicate_info(chain_session(), 103)

    assert not info.merged
    assert info.history.empty and list(info.history.columns) == list(
        duplicates.HISTORY_COLUMNS
    )
    assert info.new_uid == "uC"


def test_zero_and_missing_merge_dates_become_nat():
    history = {"1": merge("0000-00-00 00:00:00", A, B), "2": merge(None, B, C)}
    frame = duplicates.history_frame(history)
    assert frame["mergeDateTime"].isna().all()


@pytest.mark.parametrize("bad", ["", "  ", None, True, 1.5, ["uA"]])
def test_duplicate_info_refuses_a_bad_identifier_before_calling(bad):
    session = chain_session()
    with pytest.raises(InvalidInput, match="candidate identifier"):
        duplicates.duplicate_info(session, bad)
    assert session.calls == []


def test_duplicate_info_of_an_unknown_id_is_not_found():
    with pytest.raises(NotFound):
        duplicates.duplicate_info(chain_session(), "nobody")


def test_surviving_ids_follow_chains_keep_unknown_ids_and_look_each_id_up_once():
    session = chain_session()
    ids = pd.Series(
        ["uA", "uB", "uC", "uA", "nobody", None, "101"], index=list("abcdefg")
    )

    frame = duplicates.surviving_ids(session, ids)

    assert list(frame.index) == list("abcdefg")
    assert list(frame.columns) == [
        "id",
        "surviving_uid",
        "surviving_internal_id",
        "merged",
        "found",
        "chain_length",
    ]
    assert frame["surviving_uid"].tolist() == [
        "uC",
        "uC",
        "uC",
        "uC",
        "nobody",
        pd.NA,
        "uC",
    ]
    assert frame["merged"].tolist() == [True, True, False, True, False, False, True]
    assert frame["found"].tolist() == [True, True, True, True, False, False, True]
    assert frame["chain_length"].tolist() == [2, 1, 0, 2, 0, 0, 2]
    assert frame.loc["a", "surviving_internal_id"] == "103"
    assert str(frame["surviving_uid"].dtype) == "string"
    assert str(frame["merged"].dtype) == "boolean"
    # One batch, one lookup per distinct id.
    assert len(session.batches) == 1
    assert sorted(p[0] for _, p in session.batches[0]) == [
        "101",
        "nobody",
        "uA",
        "uB",
        "uC",
    ]


def test_whole_number_floats_and_nullable_integers_are_read_as_internal_ids():
    session = chain_session()

    floats = duplicates.surviving_ids(session, pd.Series([101.0, float("nan")]))
    ints = duplicates.surviving_ids(session, pd.Series([101, None], dtype="Int64"))

    assert floats["id"].tolist() == ["101", pd.NA]
    assert floats["surviving_uid"].tolist() == ["uC", pd.NA]
    assert ints["surviving_uid"].tolist() == ["uC", pd.NA]


def test_a_cycle_in_the_history_stops_instead_of_looping():
    loop = {
        "1": merge("2024-01-01 00:00:00", A, B),
        "2": merge("2024-01-02 00:00:00", B, A),
    }
    session = FakeSession({"uA": {"mergeHistory": loop}})

    frame = duplicates.surviving_ids(session, ["uA"])

    assert frame.loc[0, "chain_length"] == 2
    assert frame.loc[0, "surviving_uid"] == "uA"
    assert bool(frame.loc[0, "merged"])


def test_server_errors_other_than_not_found_are_raised():
    session = FakeSession({"uA": BadRequest("identifier refused")})
    with pytest.raises(BadRequest):
        duplicates.surviving_ids(session, ["uA"])


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ("uA", "list, Series or column"),
        (pd.DataFrame({"a": ["uA"]}), "one column"),
        ([1.5], "strings or whole numbers"),
        ([True], "strings or whole numbers"),
    ],
)
def test_surviving_ids_refuses_bad_input(ids, message):
    session = chain_session()
    with pytest.raises(InvalidInput, match=message):
        duplicates.surviving_ids(session, ids)
    assert session.batches == []


def candidates_frame():
    return pd.DataFrame(
        {"mergeHistory": [CHAIN, [], None]},
        index=pd.Index(["uC", "uX", "uY"], name="uid", dtype="string"),
    )


def test_merge_map_maps_every_source_id_to_the_record_holding_the_history():
    mapping = duplicates.merge_map(candidates_frame())

    assert mapping.index.name == "id"
    assert set(mapping.index) == {"uA", "uB", "101", "102", "P-A", "P-B"}
    assert set(mapping["surviving_uid"]) == {"uC"}
    assert mapping.loc["uA", "chain_length"] == 2
    assert mapping.loc["uB", "chain_length"] == 1
    assert mapping.loc["101", "surviving_internal_id"] == "103"


def test_surviving_ids_uses_a_merge_history_without_calls():
    frame = duplicates.surviving_ids(
        None, ["uA", "P-B", "nobody"], history=candidates_frame()
    )

    assert frame["surviving_uid"].tolist() == ["uC", "uC", "nobody"]
    assert frame["found"].tolist() == [True, True, False]


def test_surviving_ids_looks_up_only_what_the_history_does_not_explain():
    session = chain_session()

    frame = duplicates.surviving_ids(
        session, ["uA", "uC", "uX", "103"], history=candidates_frame()
    )

    assert frame["surviving_uid"].tolist() == ["uC", "uC", "uX", "uC"]
    assert frame["merged"].tolist() == [True, False, False, False]
    assert [p[0] for _, p in session.batches[0]] == ["103"]


def test_merge_map_needs_the_merge_history_column():
    with pytest.raises(InvalidInput, match="mergeHistory"):
        duplicates.merge_map(pd.DataFrame({"x": [1]}))


def test_an_internal_id_wins_over_an_equal_personal_nr_of_another_record():
    odd_a = ("uA", 101, "102")  # A's personalNr happens to be B's internalId
    frame = pd.DataFrame(
        {
            "mergeHistory": [
                {"102": merge("2024-01-01 00:00:00", B, C)},
                {"101": merge("2024-01-01 00:00:00", odd_a, ("uD", 104, "P-D"))},
            ]
        },
        index=["uC", "uD"],
    )

    for order in (frame, frame.iloc[::-1]):
        mapping = duplicates.merge_map(order)
        assert mapping.loc["102", "surviving_uid"] == "uC"
        assert mapping.loc["uA", "surviving_uid"] == "uD"


# ---- against the sandbox -------------------------------------------------------------


@pytest.fixture(scope="module")
def live():
    from otyspd import connect
    from otyspd.sandbox import serve

    srv = serve(records=200, seed=5, rate_limit=None)
    session = connect(srv.api_key, srv.url)
    yield srv, session
    session.close()
    srv.stop()


def _chain(srv):
    """(a, b, end, a's internalId, merges): a merged into b, and on until the survivor."""
    a, b, a_id = srv.store.one(
        "SELECT m1.src_uid, m1.dst_uid, m1.src_id FROM merges m1 JOIN merges m2 "
        "ON m2.src_uid = m1.dst_uid ORDER BY m1.id LIMIT 1"
    )
    path = [a, b]
    while row := srv.store.one(
        "SELECT dst_uid FROM merges WHERE src_uid = ?", (path[-1],)
    ):
        path.append(row[0])
    return a, b, path[-1], a_id, len(path) - 1


def _calls(srv, name):
    return sum(n for method, n in srv.stats["calls"].items() if method.endswith(name))


def test_duplicate_info_follows_a_sandbox_chain(live):
    srv, session = live
    a, b, c, a_id, length = _chain(srv)

    for identifier in (a, a_id, str(a_id)):
        info = session.duplicate_info(identifier)
        assert info.new_uid == c
        assert info.history["oidSource"].tolist()[:2] == [a, b]
        assert len(info.history) == length
        assert info.history["mergeDateTime"].is_monotonic_increasing


def test_a_live_candidate_without_merges_has_an_empty_history(live):
    srv, session = live
    uid = srv.store.one(
        'SELECT uid FROM "CandidateService" WHERE "mergeHistory" IS NULL ORDER BY uid LIMIT 1'
    )[0]

    info = session.duplicate_info(uid)

    assert info.history.empty and not info.merged
    assert info.new_uid == uid


def test_surviving_ids_against_the_sandbox_looks_each_id_up_once(live):
    srv, session = live
    a, b, c, a_id, length = _chain(srv)
    before = _calls(srv, "retrieveDuplicateInfo")

    frame = duplicates.surviving_ids(session, [a, b, c, "no-such-id", a, str(a_id)])

    assert frame["surviving_uid"].tolist() == [c, c, c, "no-such-id", c, c]
    assert frame["merged"].tolist() == [True, True, False, False, True, True]
    assert frame["found"].tolist() == [True, True, True, False, True, True]
    assert frame["chain_length"].tolist()[:3] == [length, length - 1, 0]
    assert _calls(srv, "retrieveDuplicateInfo") - before == 5


def test_merge_map_from_a_read_list_needs_no_further_calls(live):
    srv, session = live
    a, b, c, a_id, length = _chain(srv)
    candidates = session.read_list("Candidate", ["uid", "mergeHistory"])
    before = srv.stats["requests"]

    mapping = duplicates.merge_map(candidates)
    frame = duplicates.surviving_ids(session, [a, str(a_id), b, c], history=candidates)

    assert mapping.loc[a, "surviving_uid"] == c
    assert mapping.loc[a, "chain_length"] == length
    assert frame["surviving_uid"].tolist() == [c, c, c, c]
    assert srv.stats["requests"] == before


def test_duplicate_info_of_an_unknown_id_is_not_found_on_the_sandbox(live):
    _, session = live
    with pytest.raises(NotFound, match="not found"):
        session.duplicate_info("no-such-id")


def test_an_id_of_the_kind_given_is_followed_from_its_own_record():
    # D's personalNr is "101", which is A's internalId: the server answers A's chain.
    D = ("uD", 104, "101")
    table = {"101": answer(CHAIN, C), "P-A": answer(CHAIN, C)}
    table["101"] = answer({**CHAIN, "104": merge("2024-07-01 08:00:00", D, C)}, C)
    session = FakeSession(table)

    as_internal = duplicates.surviving_ids(session, ["101"], id_kind="internalId")
    as_personal = duplicates.surviving_ids(session, ["101"], id_kind="personalNr")

    assert as_internal["chain_length"].tolist() == [2]  # A -> B -> C
    assert as_personal["chain_length"].tolist() == [1]  # D -> C
    assert as_personal["surviving_uid"].tolist() == ["uC"]


def test_an_id_the_server_matched_as_another_kind_is_not_taken():
    # The server found internalId 101 (A); no candidate has personalNr "101".
    session = FakeSession({"101": answer(CHAIN, C)})

    with pytest.warns(duplicates.AmbiguousIdWarning, match="101"):
        frame = duplicates.surviving_ids(session, ["101"], id_kind="personalNr")

    assert frame["found"].tolist() == [False]
    assert frame["surviving_uid"].tolist() == ["101"]
    assert duplicates.surviving_ids(session, ["101"])["found"].tolist() == [True]


def test_an_unknown_id_kind_is_refused_before_any_call():
    session = FakeSession({})
    with pytest.raises(InvalidInput, match="id_kind"):
        duplicates.surviving_ids(session, ["1"], id_kind="email")
    assert session.batches == []


def test_a_personal_nr_equal_to_another_internal_id_on_the_sandbox(live):
    srv, session = live
    uid, personal_nr = srv.store.one(
        "SELECT src_uid, src_nr FROM merges "
        "WHERE src_nr IN (SELECT CAST(src_id AS TEXT) FROM merges) LIMIT 1"
    )
    by_uid = duplicates.surviving_ids(session, [uid])
    by_nr = duplicates.surviving_ids(session, [personal_nr], id_kind="personalNr")

    assert by_nr["surviving_uid"].tolist() == by_uid["surviving_uid"].tolist()
    assert by_nr["chain_length"].tolist() == by_uid["chain_length"].tolist()
