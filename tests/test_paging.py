"""Paged reads lose nothing: capped pages, drift, failures, resume, expiry, export."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

from otyspd.errors import (
    BadRequest,
    DriftError,
    IncompleteRead,
    InvalidInput,
    OwsError,
    TransportError,
)
from otyspd.paging import DriftWarning, export, iter_pages, read_detail, read_list
from otyspd.transport import CallResult

# ---- a scripted list server behind the Session interface -----------------------------


class ListServer:
    """Serves getListEx over an ordered list of records, like OWS does.

    ``cap`` is the page size served whatever the limit asked (the excluded cap
    with excludeLimitCheck); ``before_page`` runs before each page is served
    (to change the data between pages); ``failing`` maps a page's offset to
    the number of times it fails before it succeeds (offset -1: any page).
    """

    def __init__(self, n=450, *, cap=200, excluded_cap=1000, width=3):
        self.rows = [self.record(i, width) for i in range(1, n + 1)]
        self.cap, self.excluded_cap = cap, excluded_cap
        self.before_page = None
        self.failing: dict[int, int] = {}
        self.refuse = False
        self.served = 0
        self.requests = 0
        self.language_code = None
        self._cache = {}
        self.options = {"statusId": {"1": "New", "2": "Hired"}}
        self.option_calls = 0
        self.detail_calls = []

    @staticmethod
    def record(i, width=3):
        return {
            "uid": f"{i:0{width}d}",
            "statusId": 1 + i % 2,
            "Person": {"lastName": f"N{i}"},
        }

    def field_defs(self, service):
        return None

    def _page(self, args):
        self.served += 1
        page_no = self.served
        if self.before_page:
            self.before_page(page_no, self)
        offset = args["offset"]
        if self.refuse:
            raise BadRequest("Unknown field in condition (simulated)", code=-32602)
        if self.failing.get(offset, 0) > 0 or self.failing.get(-1, 0) > 0:
            key = offset if self.failing.get(offset, 0) > 0 else -1
            self.failing[key] -= 1
            raise OwsError("Internal server error (simulated)", code=500)
        limit = min(
            args["limit"],
            self.excluded_cap if args.get("excludeLimitCheck") else self.cap,
        )
        rows = self.rows[args["offset"] : args["offset"] + limit]
        return {
            "listOutput": [json.loads(json.dumps(r)) for r in rows],
            "totalCount": len(self.rows),
            "searchExtras": [],
        }

    def _run(self, method, params):
        if method.endswith("getListEx"):
            return self._page(params[0])
        if method.endswith("getOptionLists"):
            self.option_calls += 1
            return {f: self.options.get(f, []) for f in params[0]}
        if method.endswith("getDetail"):
            self.detail_calls.append(params)
            uid = params[0]
            match = [r for r in self.rows if r["uid"] == uid]
            if not match:
                raise OwsError("Record not found", code=404)
            return match[0]
        raise AssertionError(method)

    def multi(self, calls, **kwargs):
        self.requests += 1
        keyed = isinstance(calls, dict)
        items = calls.items() if keyed else enumerate(calls)
        out = {}
        for key, (method, params) in items:
            try:
                out[key] = CallResult(method, data=self._run(method, params))
            except OwsError as exc:
                out[key] = CallResult(method, error=exc)
        return out if keyed else [out[k] for k in range(len(calls))]

    def call(self, method, *params, **kwargs):
        self.requests += 1
        return self._run(method, list(params))

    def read_list(self, *args, **kwargs):
        return read_list(self, *args, **kwargs)


WHAT = ["uid", "Person.lastName", "statusId"]


def uids(df):
    return list(df.index)


# ---- capped pages --------------------------------------------------------------------


def test_a_capped_page_size_loses_no_rows():
    server = ListServer(450, cap=200)
    df = read_list(server, "Candidate", WHAT, page_size=250)
    assert uids(df) == [r["uid"] for r in server.rows]
    assert df.index.is_unique and len(df) == 450


def test_excluded_limit_check_is_sent_for_big_pages_and_the_real_size_learnt():
    server = ListServer(2500, cap=200, excluded_cap=700)
    df = read_list(server, "Candidate", WHAT, page_size=1000)
    assert len(df) == 2500 and df.index.is_unique
    # one first page, then batches of up to 10 pages of 700
    assert server.requests == 2


def test_pages_are_batched_into_few_requests():
    server = ListServer(2000)
    df = read_list(server, "Candidate", WHAT, labels=False)
    assert len(df) == 2000
    assert server.requests == 2  # the first page, then the other 1800 rows in 10 pages


def test_frame_has_the_columns_asked_in_order_with_labels():
    server = ListServer(30)
    df = read_list(server, "Candidate", ["statusId", "Person.lastName"])
    assert list(df.columns) == ["statusId", "Person.lastName"]
    assert df.index.name == "uid"
    assert df.loc["001", "statusId"] == "Hired"
    assert df.attrs["otyspd"]["labels"]["statusId"] == {"1": "New", "2": "Hired"}
    assert df.attrs["otyspd"]["service"] == "CandidateService"
    raw = read_list(server, "Candidate", ["statusId"], labels=False)
    assert raw["statusId"].dtype == "Int64"
    assert server.option_calls == 1  # cached per service and language


def test_limit_and_empty_lists():
    server = ListServer(450)
    assert len(read_list(server, "Candidate", WHAT, limit=210)) == 210
    empty = read_list(ListServer(0), "Candidate", WHAT)
    assert len(empty) == 0 and list(empty.columns) == ["Person.lastName", "statusId"]


# ---- drift ---------------------------------------------------------------------------


def test_a_record_removed_before_the_read_position_is_not_skipped():
    server = ListServer(10, cap=2)

    def remove_first(page_no, srv):
        if page_no == 2:
            del srv.rows[0]

    server.before_page = remove_first
    with pytest.warns(DriftWarning, match=r"total 10 at the start and 9 at the end"):
        df = read_list(server, "Candidate", WHAT, page_size=2, batch=1)
    assert uids(df) == [f"{i:03d}" for i in range(1, 11)]


def test_a_record_added_before_the_read_position_is_not_duplicated():
    server = ListServer(10, cap=2)

    def add_front(page_no, srv):
        if page_no == 2:
            srv.rows.insert(
                0, {"uid": "000", "statusId": 1, "Person": {"lastName": "new"}}
            )

    server.before_page = add_front
    with pytest.warns(DriftWarning, match="11 at the end"):
        df = read_list(server, "Candidate", WHAT, page_size=2, batch=1)
    assert df.index.is_unique
    assert set(uids(df)) >= {f"{i:03d}" for i in range(1, 11)}


def test_churn_on_every_page_loses_nothing_that_stayed():
    server = ListServer(600, cap=50)
    added = []

    def churn(page_no, srv):
        if 1 < page_no < 14 and page_no % 2 == 0:
            # a colleague removes a record already read and adds a new one (new uids sort last)
            del srv.rows[page_no]
            added.append({"uid": f"9{page_no:03d}", "statusId": 1, "Person": {}})
            srv.rows.append(added[-1])
            srv.rows[page_no + 5]["statusId"] = 2

    server.before_page = churn
    with pytest.warns(DriftWarning, match="recovered after records moved") as caught:
        df = read_list(server, "Candidate", WHAT, page_size=50, batch=3)
    assert df.index.is_unique
    assert {r["uid"] for r in server.rows} - set(df.index) == set()
    assert "600 at the start" in str(caught[0].message)


def test_strict_mode_raises_drift_error_with_the_frame():
    server = ListServer(10, cap=2)
    server.before_page = lambda n, srv: srv.rows.pop() if n == 3 else None
    with pytest.raises(DriftError, match="total 10 at the start and 9") as info:
        read_list(server, "Candidate", WHAT, page_size=2, batch=1, strict=True)
    assert len(info.value.frame) == 9


# ---- failures, resume ----------------------------------------------------------------


def test_a_failing_page_is_retried_on_the_same_offset():
    server = ListServer(1000, cap=200)
    server.failing = {398: 2}  # the third page (pages overlap by one row)
    df = read_list(server, "Candidate", WHAT, batch=1, page_retries=3)
    assert uids(df) == [r["uid"] for r in server.rows]


def test_a_page_that_keeps_failing_raises_with_partial_rows_and_resume_offset():
    server = ListServer(1000, cap=200)
    server.failing = {398: 99}
    with pytest.raises(IncompleteRead, match="offset 399") as info:
        read_list(server, "Candidate", WHAT, page_size=200, batch=1, page_retries=2)
    err = info.value
    assert err.resume_offset == 399 and err.expected == 1000
    assert uids(err.partial) == [r["uid"] for r in server.rows[:399]]
    assert isinstance(err.__cause__, OwsError)

    server.failing = {}
    rest = read_list(server, "Candidate", WHAT, offset=err.resume_offset)
    whole = pd.concat([err.partial, rest])
    assert uids(whole) == [r["uid"] for r in server.rows]


def test_a_first_page_that_keeps_failing_is_an_incomplete_read_from_the_start():
    server = ListServer(300, cap=200)
    server.failing = {0: 99}
    with pytest.raises(IncompleteRead, match="offset 0") as info:
        read_list(server, "Candidate", WHAT, page_retries=1)
    err = info.value
    assert err.resume_offset == 0 and len(err.partial) == 0
    assert list(err.partial.columns) == list(
        read_list(ListServer(1), "Candidate", WHAT)
    )

    server.failing = {}
    assert len(read_list(server, "Candidate", WHAT, offset=err.resume_offset)) == 300


def test_a_refused_first_page_is_the_servers_error_not_an_incomplete_read():
    server = ListServer(300)
    server.refuse = True
    with pytest.raises(OwsError) as info:
        read_list(server, "Candidate", WHAT)
    assert not isinstance(info.value, IncompleteRead)


def test_a_refusal_mid_read_carries_the_rows_so_far_and_where_to_resume():
    server = ListServer(1000, cap=200)

    def refuse_later(page_no, srv):
        srv.refuse = page_no >= 3

    server.before_page = refuse_later
    with pytest.raises(IncompleteRead) as info:
        read_list(server, "Candidate", WHAT, page_size=200, batch=1)
    err = info.value
    assert isinstance(err.__cause__, BadRequest)
    assert len(err.partial) == err.resume_offset > 0
    assert uids(err.partial) == [r["uid"] for r in server.rows[: err.resume_offset]]

    server.before_page = None
    server.refuse = False
    rest = read_list(server, "Candidate", WHAT, offset=err.resume_offset)
    assert uids(pd.concat([err.partial, rest])) == [r["uid"] for r in server.rows]


def test_a_failure_inside_a_batch_keeps_the_pages_before_it():
    server = ListServer(1000, cap=100)
    server.failing = {-1: 0}
    state = {"n": 0}

    def fail_later(page_no, srv):
        state["n"] += 1
        if state["n"] >= 5:
            srv.failing[-1] = 1

    server.before_page = fail_later
    with pytest.raises(IncompleteRead) as info:
        read_list(server, "Candidate", WHAT, page_size=100, batch=10, page_retries=0)
    err = info.value
    # four pages of 100 overlapping by one row were kept: 100 + 3 * 99 rows
    assert err.resume_offset == len(err.partial) == 397
    assert uids(err.partial) == [r["uid"] for r in server.rows[:397]]


def test_a_whole_request_failing_is_retried_then_reported():
    server = ListServer(600)
    calls = {"n": 0}
    real = server.multi

    def flaky(batch, **kw):
        calls["n"] += 1
        if calls["n"] in (2, 3):
            raise TransportError("connection dropped")
        return real(batch, **kw)

    server.multi = flaky
    assert len(read_list(server, "Candidate", WHAT)) == 600


def test_a_malformed_page_is_not_taken_for_the_end_of_the_list():
    server = ListServer(600)
    real = server._page
    state = {"n": 0}

    def null_once(args):
        state["n"] += 1
        return None if state["n"] == 2 else real(args)

    server._page = null_once
    df = read_list(server, "Candidate", WHAT, batch=1)
    assert len(df) == 600


def test_a_server_that_never_stops_sending_is_cut_off():
    server = ListServer(300)
    real = server._page

    def endless(args):
        page = real({**args, "offset": 0})
        page["totalCount"] = 10**9
        for i, row in enumerate(page["listOutput"]):
            row["uid"] = f"{args['offset']}-{i}"
        return page

    server._page = endless
    with pytest.raises(IncompleteRead, match="stopped after 5 pages"):
        read_list(server, "Candidate", WHAT, max_pages=5)


# ---- arguments, iter_pages, detail ---------------------------------------------------


def test_bad_arguments_are_rejected_before_any_request():
    server = ListServer(10)
    for kwargs in (
        {"page_size": 0},
        {"batch": "x"},
        {"colour": 1},
        {"types": {"a": "money"}},
        {"labels": ["nope"]},
    ):
        with pytest.raises(InvalidInput):
            read_list(server, "Candidate", WHAT, **kwargs)
    with pytest.raises(InvalidInput):
        read_list(server, "Candidate", ["Person", "Person.lastName"])
    assert server.requests == 0


def test_a_page_size_of_one_is_refused_since_pages_overlap_by_one_row():
    # Each page after the first starts on the last row already read: a page of
    # one row would be that row again, and the read would never move on.
    server = ListServer(7)
    with pytest.raises(InvalidInput, match=r"page_size must be a whole number >= 2"):
        read_list(server, "Candidate", WHAT, page_size=1)
    assert server.requests == 0
    assert len(read_list(server, "Candidate", WHAT, page_size=2)) == 7


def test_iter_pages_yields_one_frame_per_page():
    server = ListServer(450)
    frames = list(iter_pages(server, "Candidate", WHAT, labels=False, page_size=200))
    assert [len(f) for f in frames] == [200, 199, 51]  # pages overlap by one row
    assert all(f["statusId"].dtype == "Int64" for f in frames)


def test_read_detail_gives_a_series_named_by_uid():
    server = ListServer(5)
    row = read_detail(server, "Candidate", "003", ["Person.lastName", "statusId"])
    assert row.name == "003"
    assert row["Person.lastName"] == "N3" and row["statusId"] == "Hired"
    assert server.detail_calls[0] == [
        "003",
        {"uid": 1, "Person": {"lastName": 1}, "statusId": 1},
    ]


# ---- export --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl"])
def test_export_streams_every_row_and_renames_at_the_end(tmp_path, suffix):
    server = ListServer(450)
    out = tmp_path / f"cands.{suffix}"
    info = export(server, "Candidate", WHAT, path=out)
    assert info["rows"] == 450 and out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    if suffix == "parquet":
        back = pd.read_parquet(out)
    elif suffix == "csv":
        back = pd.read_csv(out, dtype=str)
    else:
        back = pd.read_json(out, lines=True, dtype=False)
    assert list(back["uid"]) == [r["uid"] for r in server.rows]
    assert set(back["statusId"]) == {"New", "Hired"}


def test_a_failed_export_leaves_no_file(tmp_path):
    server = ListServer(450)
    server.failing = {199: 99}
    with pytest.raises(IncompleteRead):
        export(
            server,
            "Candidate",
            WHAT,
            path=tmp_path / "x.csv",
            page_size=200,
            page_retries=0,
        )
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InvalidInput, match="must end in"):
        export(server, "Candidate", WHAT, path=tmp_path / "x.xlsx")


# ---- every request of the read is retried, then kept as an incomplete read -----------


def _remove_before_position(server, at_page):
    def remove(page_no, srv):
        if page_no == at_page:
            del srv.rows[0]

    server.before_page = remove


def test_the_re_read_after_deletions_is_retried():
    server = ListServer(40, cap=10)
    _remove_before_position(server, 3)
    real = server.call
    state = {"failures": 0}

    def flaky_call(method, *params, **kw):
        if state["failures"] < 2:
            state["failures"] += 1
            raise TransportError("connection dropped (simulated)")
        return real(method, *params, **kw)

    server.call = flaky_call
    with pytest.warns(DriftWarning, match="recovered"):
        df = read_list(server, "Candidate", WHAT, page_size=10, batch=1, page_retries=2)
    assert state["failures"] == 2
    assert uids(df) == [f"{i:03d}" for i in range(1, 41)]


def test_a_re_read_that_keeps_failing_keeps_the_rows_and_resumes_early_enough():
    server = ListServer(60, cap=10)
    # two records before the read position go away before the third page
    server.before_page = lambda n, srv: (
        srv.rows.__delitem__(slice(0, 2)) if n == 3 else None
    )

    def failing_call(method, *params, **kw):
        raise TransportError("connection dropped (simulated)")

    server.call = failing_call
    with pytest.raises(IncompleteRead, match="drop repeated uids") as info:
        read_list(server, "Candidate", WHAT, page_size=10, batch=1, page_retries=1)
    err = info.value
    assert isinstance(err.__cause__, TransportError)
    assert uids(err.partial) == [f"{i:03d}" for i in range(1, 20)]
    assert err.expected == 58  # the total the failing batch reported
    # the offset is set back before rows that slid back: a resumed read repeats
    # some rows, and misses none of those still there
    assert err.resume_offset < len(err.partial)
    server.before_page = None
    rest = read_list(server, "Candidate", WHAT, offset=err.resume_offset)
    whole = pd.concat([err.partial, rest])
    whole = whole[~whole.index.duplicated()]
    assert set(whole.index) >= {r["uid"] for r in server.rows}


def test_a_page_with_a_record_without_uid_is_retried_then_incomplete():
    server = ListServer(300, cap=100)
    real = server._page

    def no_uid(args):
        page = real(args)
        if args["offset"] >= 150:
            page["listOutput"][3].pop("uid")
        return page

    server._page = no_uid
    with pytest.raises(IncompleteRead, match="without a uid") as info:
        read_list(server, "Candidate", WHAT, page_size=100, batch=1, page_retries=1)
    assert info.value.resume_offset == len(info.value.partial) == 199


def test_a_failing_option_list_on_the_first_page_is_retried_then_incomplete():
    server = ListServer(50)
    real = server._run

    def broken_options(method, params):
        if method.endswith("getOptionLists"):
            raise OwsError("Internal server error (simulated)", code=500)
        return real(method, params)

    server._run = broken_options
    with pytest.raises(IncompleteRead, match="offset 0") as info:
        read_list(server, "Candidate", WHAT, page_retries=1)
    assert info.value.resume_offset == 0 and len(info.value.partial) == 0
    assert server.requests == 2


def test_iter_pages_says_the_rows_were_already_yielded():
    server = ListServer(500, cap=100)
    server.failing = {198: 99}
    got = []
    with pytest.raises(IncompleteRead, match="already handed over") as info:
        for frame in iter_pages(
            server, "Candidate", WHAT, page_size=100, batch=1, page_retries=0
        ):
            got.append(frame)
    err = info.value
    assert "in .partial" not in str(err) and len(err.partial) == 0
    assert err.resume_offset == sum(len(f) for f in got) == 199
    server.failing = {}
    rest = list(iter_pages(server, "Candidate", WHAT, offset=err.resume_offset))
    whole = pd.concat(got + rest)
    assert uids(whole) == [r["uid"] for r in server.rows]


def test_page_size_above_the_server_maximum_is_capped():
    server = ListServer(2500)
    limits = []
    real = server._page

    def spy(args):
        limits.append(args["limit"])
        return real(args)

    server._page = spy
    assert len(read_list(server, "Candidate", WHAT, page_size=5000)) == 2500
    assert max(limits) == 1000


# ---- export: failures, empty lists, files --------------------------------------------


def test_an_interrupted_export_says_nothing_was_written_and_offers_no_resume(tmp_path):
    server = ListServer(450)
    server.failing = {199: 99}
    out = tmp_path / "x.csv"
    with pytest.raises(IncompleteRead, match="run the export again") as info:
        export(server, "Candidate", WHAT, path=out, page_size=200, page_retries=0)
    err = info.value
    assert f"Nothing was written to {str(out)!r}" in str(err)
    assert "offset=" not in str(err) and "partial" not in str(err)
    assert err.partial is None and err.resume_offset is None and err.expected == 450
    assert list(tmp_path.iterdir()) == []


def test_an_export_interrupted_by_ctrl_c_leaves_no_file(tmp_path):
    server = ListServer(450)

    def interrupt(page_no, srv):
        if page_no == 2:
            raise KeyboardInterrupt

    server.before_page = interrupt
    with pytest.raises(KeyboardInterrupt):
        export(server, "Candidate", WHAT, path=tmp_path / "x.parquet", page_size=200)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl"])
def test_an_export_of_no_rows_is_a_valid_empty_file(tmp_path, suffix):
    server = ListServer(0)
    out = tmp_path / f"none.{suffix}"
    assert export(server, "Candidate", WHAT, path=out)["rows"] == 0
    if suffix == "parquet":
        back = pd.read_parquet(out)
        assert list(back.columns) == WHAT and len(back) == 0
    elif suffix == "csv":
        assert out.read_text() == "uid,Person.lastName,statusId\n"
        back = pd.read_csv(out)
        assert list(back.columns) == WHAT and len(back) == 0
    else:
        assert out.read_text() == ""


def test_an_exported_file_follows_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        export(ListServer(5), "Candidate", WHAT, path=tmp_path / "a.csv")
        os.umask(0o027)
        export(ListServer(5), "Candidate", WHAT, path=tmp_path / "b.parquet")
    finally:
        os.umask(old)
    assert (tmp_path / "a.csv").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.parquet").stat().st_mode & 0o777 == 0o640


def test_an_export_path_that_cannot_be_written_is_refused_before_any_request(
    tmp_path,
):
    import os

    server = ListServer(5)
    # /proc takes no new files, even from root; a read-only folder elsewhere
    unwritable = "/proc" if os.path.isdir("/proc/self") else None
    if unwritable is None:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        if os.access(locked, os.W_OK):
            pytest.skip("no folder here refuses new files")
        unwritable = str(locked)
    with pytest.raises(InvalidInput, match="cannot write in the folder"):
        export(server, "Candidate", WHAT, path=os.path.join(unwritable, "x.csv"))
    folder = tmp_path / "out.csv"
    folder.mkdir()
    with pytest.raises(InvalidInput, match="is a folder"):
        export(server, "Candidate", WHAT, path=folder)
    with pytest.raises(InvalidInput, match="does not exist"):
        export(server, "Candidate", WHAT, path=tmp_path / "no" / "x.csv")
    assert server.requests == 0


def test_a_parquet_export_without_pyarrow_says_how_to_install_it(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    server = ListServer(5)
    with pytest.raises(InvalidInput, match=r"pip install 'otyspd\[parquet\]'"):
        export(server, "Candidate", WHAT, path=tmp_path / "x.parquet")
    assert server.requests == 0 and list(tmp_path.iterdir()) == []


def test_no_warning_when_nothing_moved():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_list(ListServer(1000, cap=200), "Candidate", WHAT)) == 1000


def test_module_level_read_list_uses_the_last_session(monkeypatch):
    import otyspd
    from otyspd import session as session_module

    monkeypatch.setattr(session_module, "_last_session", None)
    with pytest.raises(InvalidInput, match="connect"):
        otyspd.read_list("Candidate", WHAT)
    server = ListServer(20)
    monkeypatch.setattr(session_module, "_last_session", server)
    assert len(otyspd.read_list("Candidate", WHAT, otyspd.F("statusId") == 1)) == 20


# ---- against the sandbox -------------------------------------------------------------

sandbox = pytest.importorskip("otyspd.sandbox")

FIELDS = ["Person.lastName", "statusId", "entryDateTime", "Person.birthdate"]


@pytest.fixture
def srv():
    with sandbox.serve(port=0, records=1000, seed=3, rate_limit=None) as server:
        yield server


def connect(server, **options):
    import otyspd

    return otyspd.connect(
        server.api_key,
        server.url,
        username=server.username,
        password=server.password,
        backoff=0.0,
        **options,
    )


def all_uids(session):
    return set(session.read_list("Candidate", ["uid"], labels=False).index)


def test_sandbox_read_is_complete_typed_and_labelled(srv):
    session = connect(srv)
    before = srv.stats["requests"]
    df = session.read_list("Candidate", FIELDS, page_size=250)
    assert len(df) == 1000 and df.index.is_unique
    assert (
        srv.stats["requests"] - before <= 3
    )  # first page, one batch (options ride along)
    assert isinstance(df["statusId"].dtype, pd.CategoricalDtype)
    assert str(df["entryDateTime"].dtype) == "datetime64[ns, Europe/Amsterdam]"
    uid = df.index[7]
    stored = srv.get("CandidateService", uid)
    assert df.loc[uid, "Person.lastName"] == stored["Person"]["lastName"]
    with session.language("en"):
        en = session.read_list("Candidate", ["statusId"], limit=50)
    assert set(en["statusId"].dropna()) <= {
        "New",
        "Active",
        "Proposed",
        "Placed",
        "Unavailable",
        "Archive",
    }
    row = session.read_detail("Candidate", uid, FIELDS)
    assert row.name == uid and row["Person.lastName"] == df.loc[uid, "Person.lastName"]


def test_sandbox_condition_and_sort_reach_the_server(srv):
    from otyspd import F

    session = connect(srv)
    df = session.read_list(
        "Candidate",
        ["statusId", "entryDateTime"],
        F("statusId").isin([1, 2]),
        sort=["-entryDateTime"],
        labels=False,
    )
    assert set(df["statusId"]) <= {1, 2} and len(df) > 0
    assert df["entryDateTime"].is_monotonic_decreasing
    import datetime as dt

    since = session.read_list(
        "Candidate", ["entryDateTime"], F("entryDateTime") >= dt.datetime(2024, 1, 1)
    )
    assert len(since) > 0
    assert since["entryDateTime"].min() >= pd.Timestamp(
        "2024-01-01", tz="Europe/Amsterdam"
    )
    with pytest.raises(InvalidInput, match="not a field"):
        session.read_list("Candidate", ["nope"])


def test_sandbox_conditions_may_name_options_by_their_labels(srv):
    from otyspd import F

    session = connect(srv)
    by_label = session.read_list(
        "Candidate", ["statusId"], F("statusId").isin(["Actief", "Archief"])
    )
    by_id = session.read_list("Candidate", ["statusId"], F("statusId").isin([2, 6]))
    assert list(by_label.index) == list(by_id.index) and len(by_id) > 0
    assert set(by_label["statusId"]) == {"Actief", "Archief"}

    # A text option id is kept as it is; its label works too.
    nl = session.read_list("Candidate", ["uid"], F("Person.languageCode") == "nl")
    dutch = session.read_list(
        "Candidate", ["uid"], F("Person.languageCode") == "Nederlands"
    )
    assert list(nl.index) == list(dutch.index) and len(nl) > 0

    requests = srv.stats["requests"]
    with pytest.raises(InvalidInput, match="'Actif' is not a label") as info:
        session.read_list("Candidate", ["statusId"], F("statusId") == "Actif")
    assert "'Actief'" in str(info.value)
    # refused before any list call (the option list was already cached)
    assert srv.stats["requests"] == requests


def test_sandbox_churn_loses_nothing_silently(srv):
    session = connect(srv)
    before = all_uids(session)
    srv.configure(churn={"add": 3, "change": 3, "delete": 3})
    with pytest.warns(
        DriftWarning, match=r"total 1000 at the start and \d+ at the end"
    ) as caught:
        df = session.read_list("Candidate", FIELDS, page_size=100, batch=2)
    srv.configure(churn=None)
    after = all_uids(session)
    assert df.index.is_unique
    assert (before & after) - set(df.index) == set()
    assert "repeated uid" in str(caught[0].message)


def test_sandbox_a_failing_page_raises_incomplete_read_and_resume_completes(srv):
    session = connect(srv, retries=1)
    real = session.multi
    state = {"n": 0}

    def breaking(calls, **kw):
        state["n"] += 1
        if state["n"] == 3:
            srv.configure(fault_rate=1.0)
        return real(calls, **kw)

    session.multi = breaking
    with pytest.raises(IncompleteRead) as info:
        session.read_list("Candidate", FIELDS, page_size=100, batch=1, page_retries=1)
    err = info.value
    assert err.expected == 1000 and err.resume_offset == len(err.partial) == 199
    srv.configure(fault_rate=0.0)
    session.multi = real
    rest = session.read_list("Candidate", FIELDS, offset=err.resume_offset)
    whole = pd.concat([err.partial, rest])
    assert len(whole) == 1000 and whole.index.is_unique


def test_sandbox_session_expiry_mid_read_is_recovered(srv):
    srv.configure(expire_after_calls=3)
    session = connect(srv)
    df = session.read_list("Candidate", FIELDS, page_size=100, batch=2)
    assert len(df) == 1000 and df.index.is_unique
    assert srv.stats["logins"] >= 3


def test_sandbox_tight_rate_limit_is_waited_out(srv):
    srv.configure(rate_limit=3, rate_window=0.5)
    session = connect(srv)
    df = session.read_list(
        "Candidate", ["statusId"], page_size=200, batch=1, labels=False
    )
    assert len(df) == 1000


def test_sandbox_export_and_module_level_read(srv, tmp_path, monkeypatch):
    import otyspd

    session = connect(srv)
    info = session.export(
        "Candidate", FIELDS, otyspd.F("statusId") == 2, path=tmp_path / "c.parquet"
    )
    back = pd.read_parquet(tmp_path / "c.parquet")
    assert info["rows"] == len(back) > 0
    assert back["uid"].is_unique
    assert len(otyspd.read_list("Candidate", ["uid"], {"statusId": 2})) == len(back)


def test_cli_export_writes_the_file(tmp_path, capsys):
    from otyspd.cli import main

    out = tmp_path / "c.jsonl"
    argv = [
        "export",
        "Candidate",
        "--sandbox",
        "--records",
        "250",
        "--what",
        "Person.lastName,statusId",
    ]
    argv += ["--where", "statusId=1|2", "--sort", "-entryDateTime", "-o", str(out)]
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and {r["statusId"] for r in rows} <= {"Nieuw", "Actief"}
    assert f"wrote {len(rows)} rows" in capsys.readouterr().out
    assert (
        main(
            [
                "export",
                "Candidate",
                "--sandbox",
                "--records",
                "50",
                "--what",
                "x",
                "--where",
                "nope",
                "-o",
                str(out),
            ]
        )
        == 2  # a bad --where is a usage error
    )
    assert "no operator" in capsys.readouterr().err
