"""The notebook widgets, driven from Python: fill in their parts, press buttons.

The first tests use a stand-in session to pin down the forms' own logic (the
key is wiped, bad input becomes a message). The rest drive the widgets
against a real sandbox on 127.0.0.1 and check what reached the server.
"""

from __future__ import annotations

import json
import socket
import warnings
from typing import Any

import pandas as pd
import pytest

import otyspd
from otyspd import session as session_module
from otyspd import widgets
from otyspd.errors import AccessDenied, InvalidInput, TransportError
from otyspd.query import F
from otyspd.schema import FieldDef

KEY = "k3y-that-must-never-show-up"


class StandInSession:
    """Records what the explorer asks; returns a small frame."""

    def __init__(self) -> None:
        self.user = {"client": "Recruitment Heroes", "username": "partner.heroes"}
        self.reads: list[dict] = []
        self.closed = False
        self.warning = ""

    def field_defs(self, service: str) -> dict[str, FieldDef] | None:
        if service != "CandidateService":
            return None
        return {
            "uid": FieldDef("uid"),
            "statusId": FieldDef("statusId", type="integer"),
            "Person.lastName": FieldDef("Person.lastName"),
            "Person.age": FieldDef("Person.age", type="integer", sortable=False),
            "ownsCar": FieldDef("ownsCar", type="boolean"),
            "remarks": FieldDef(
                "remarks", type="text", listable=False, filterable=False
            ),
        }

    def read_list(self, service: str, what: Any, condition: Any = None, **kw: Any):
        self.reads.append(
            {"service": service, "what": what, "condition": condition, **kw}
        )
        if self.warning:
            warnings.warn(self.warning, UserWarning, stacklevel=2)
        frame = pd.DataFrame(
            {p: ["a", "b"] for p in what}, index=pd.Index(["1", "2"], name="uid")
        )
        return frame

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_connect(monkeypatch):
    calls = []

    def connect(api_key=None, url=None, *, sandbox=False, **options):
        calls.append({"api_key": api_key, "url": url, "sandbox": sandbox})
        if api_key == "wrong":
            raise AccessDenied("Invalid API key", code=0, method="loginByUid")
        return StandInSession()

    monkeypatch.setattr(session_module, "connect", connect, raising=False)
    monkeypatch.setattr(session_module, "_last_session", None)
    return calls


# ---- connect form, with a stand-in connect -------------------------------------------


def test_connect_form_wipes_the_key_and_shows_who_is_connected(fake_connect):
    form = widgets.connect_form(url="http://127.0.0.1:9/jservice.php")
    form.key.value = KEY
    form.connect_button.click()

    assert fake_connect == [
        {"api_key": KEY, "url": "http://127.0.0.1:9/jservice.php", "sandbox": False}
    ]
    assert form.key.value == ""
    assert form.session is session_module._last_session
    assert "Recruitment Heroes" in form.message_text
    assert "partner.heroes" in form.message_text
    assert (
        repr(form) == "ConnectForm(connected to Recruitment Heroes as partner.heroes)"
    )
    assert not form.connect_button.disabled


def test_connect_form_shows_a_bad_key_as_a_message_and_wipes_it(fake_connect):
    form = widgets.connect_form(url="http://127.0.0.1:9/jservice.php")
    form.key.value = "wrong"
    form.connect_button.click()

    assert form.session is None
    assert form.key.value == ""
    assert "Invalid API key" in form.message_text
    assert "color: #b42318" in form.message.value
    assert "Traceback" not in form.message_text


def test_connect_form_message_holds_no_memory_address(monkeypatch):
    def connect(**kwargs):
        raise TransportError(
            "loginByUid: the connection failed (<urllib3.connection.HTTPConnection "
            "object at 0x7f3a2c1d9e80>: Failed to establish a new connection)"
        )

    monkeypatch.setattr(session_module, "connect", connect)
    form = widgets.connect_form(url="http://127.0.0.1:9/jservice.php")
    form.key.value = KEY
    form.connect_button.click()

    assert form.message_text == (
        "loginByUid: the connection failed (<urllib3.connection.HTTPConnection>: "
        "Failed to establish a new connection)"
    )


def test_connect_form_asks_for_a_key_before_connecting(fake_connect):
    form = widgets.connect_form(url="http://127.0.0.1:9/jservice.php")
    form.connect_button.click()

    assert fake_connect == []
    assert "enter an API key" in form.message_text


def test_connect_form_url_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("OTYS_URL", "http://127.0.0.1:8/jservice.php")
    assert widgets.connect_form().url.value == "http://127.0.0.1:8/jservice.php"
    monkeypatch.delenv("OTYS_URL")
    assert widgets.connect_form().url.value == "https://ows.otys.nl/jservice.php"


def test_connect_form_with_the_sandbox_ticked_needs_no_key(fake_connect):
    form = widgets.connect_form()
    form.sandbox.value = True
    assert form.key.disabled and form.url.disabled
    form.connect_button.click()

    assert fake_connect == [{"api_key": None, "url": None, "sandbox": True}]
    assert "simulated data" in form.message_text


def test_connecting_again_closes_the_previous_session(fake_connect):
    form = widgets.connect_form(url="http://127.0.0.1:9/jservice.php")
    form.key.value = KEY
    form.connect_button.click()
    first = form.session
    form.key.value = KEY
    form.connect_button.click()

    assert first.closed
    assert form.session is not first


# ---- explorer, with a stand-in session -----------------------------------------------


def test_explorer_offers_the_listable_fields_of_the_service():
    ex = widgets.explorer(StandInSession())
    assert list(ex.fields.options) == [
        "uid",
        "statusId",
        "Person.lastName",
        "Person.age",
        "ownsCar",
    ]
    assert "Person.age" not in ex.sort_field.options
    ex.service.value = "VacancyService"
    assert list(ex.fields.options) == []
    assert "type dotted paths" in ex.message_text


def test_explorer_compiles_rows_and_raw_condition_into_one_and():
    ex = widgets.explorer(StandInSession())
    ex.fields.value = ("Person.lastName",)
    ex.extra_fields.value = "Person.AddressPrimary.city, statusId"
    ex.add_row("statusId", "in", "1, 3")
    ex.add_row("Person.lastName", "like", "J%")
    ex.add_row("ownsCar", "is true")
    ex.add_row()  # a blank row is ignored
    ex.raw_condition.value = (
        '{"type": "COND", "field": "Person.age", "op": "GE", "param": 18}'
    )
    ex.sort_field.value = "Person.lastName"
    ex.sort_order.value = "desc"
    ex.preview_button.click()

    (read,) = ex.session.reads
    assert read["what"] == ["Person.lastName", "Person.AddressPrimary.city", "statusId"]
    assert read["condition"].to_ows() == {
        "type": "AND",
        "items": [
            {"type": "COND", "field": "statusId", "op": "EQ", "param": [1, 3]},
            {"type": "COND", "field": "Person.lastName", "op": "LIKE", "param": "J%"},
            {"type": "COND", "field": "ownsCar", "op": "T"},
            {"type": "COND", "field": "Person.age", "op": "GE", "param": 18},
        ],
    }
    assert read["sort"] == ["-Person.lastName"]
    assert read["limit"] == 20
    assert ex.preview_frame is not None
    assert "Person.lastName" in ex.output.outputs[0]["data"]["text/plain"]


@pytest.mark.parametrize(
    ("row", "raw", "expected"),
    [
        (("", "==", "3"), "", "condition row 1: pick a field"),
        (("statusId", "==", "three"), "", "'statusId' is a number field"),
        (("statusId", "in", " , "), "", "'in' needs values"),
        (("Person.lastName", "like", ""), "", "'like' needs a pattern"),
        (("ownsCar", "==", "maybe"), "", "use 'is true' / 'is false'"),
        (None, "{statusId: 3}", "raw condition: not JSON"),
        (None, '{"type": "COND", "field": "x", "op": "ABOUT"}', "unknown operator"),
    ],
)
def test_explorer_shows_bad_input_as_a_message_and_reads_nothing(row, raw, expected):
    ex = widgets.explorer(StandInSession())
    ex.fields.value = ("statusId",)
    if row:
        ex.add_row(*row)
    ex.raw_condition.value = raw
    ex.preview_button.click()

    assert ex.session.reads == []
    assert expected in ex.message_text
    assert not ex.preview_button.disabled


def test_explorer_shows_warnings_of_the_read_in_its_message():
    ex = widgets.explorer(StandInSession())
    ex.session.warning = "3 records were added while reading; 203 rows, 200 expected"
    ex.fields.value = ("statusId",)
    ex.load_button.click()

    assert ex.frame is not None
    assert ex.message_text == (
        "Loaded 2 rows; the frame is explorer.frame.\n"
        "Warning: 3 records were added while reading; 203 rows, 200 expected"
    )


def test_explorer_needs_at_least_one_field():
    ex = widgets.explorer(StandInSession())
    ex.load_button.click()
    assert "pick at least one field" in ex.message_text
    assert ex.frame is None


def test_explorer_without_a_session_says_connect_first(monkeypatch):
    monkeypatch.setattr(session_module, "_last_session", None)
    with pytest.raises(InvalidInput, match="connect first"):
        widgets.explorer()


def test_removing_a_condition_row_drops_it():
    ex = widgets.explorer(StandInSession())
    row = ex.add_row("statusId", "==", "3")
    row.remove_button.click()
    assert ex.rows == [] and ex.rows_box.children == ()
    assert ex.condition() is None


# ---- review panel, with a stand-in plan ----------------------------------------------


class StandInReport:
    def __init__(self, frame: pd.DataFrame, undo: Any = None) -> None:
        self.frame = frame
        self.counts = frame["status"].value_counts().to_dict()
        self._undo = undo

    def undo(self) -> StandInReport:
        return self._undo()


class StandInPlan:
    """A dry-run plan whose apply writes into ``store`` (and can fail on demand)."""

    def __init__(self, store: dict, changes: list[tuple[str, str, Any, Any]]) -> None:
        self.store = store
        self.frame = pd.DataFrame(changes, columns=["uid", "field", "old", "new"])
        self.frame["status"] = "planned"
        self.counts = {"planned": len(changes)}
        self.applied_with: list | None = None
        self.fail = False

    def apply(self, *, exclude=()) -> StandInReport:
        if self.fail:
            raise AccessDenied("Access denied; please login again", code=0)
        self.applied_with = list(exclude)
        frame = self.frame.copy()
        for i, row in frame.iterrows():
            if (row.uid, row.field) in exclude:
                frame.loc[i, "status"] = "skipped"
            else:
                self.store[(row.uid, row.field)] = row.new
                frame.loc[i, "status"] = "written"

        def undo() -> StandInReport:
            back = frame[frame.status == "written"].copy()
            for row in back.itertuples():
                self.store[(row.uid, row.field)] = row.old
            return StandInReport(back)

        return StandInReport(frame, undo)


class PlanningSession:
    def __init__(self, plan: StandInPlan | Exception) -> None:
        self.plan = plan

    def write_back(self, service, original, edited, *, dry_run=False, **options):
        assert dry_run is True
        if isinstance(self.plan, Exception):
            raise self.plan
        return self.plan


def _stand_in_panel(changes=None):
    changes = changes or [
        ("1", "Person.lastName", "Jansen", "Janssen"),
        ("1", "statusId", "2", "3"),
        ("2", "Person.lastName", None, "Smit"),
    ]
    store = {(uid, field): old for uid, field, old, _ in changes}
    plan = StandInPlan(store, changes)
    return widgets.review(
        PlanningSession(plan), "Candidate", pd.DataFrame(), pd.DataFrame()
    ), store


def test_review_lists_each_change_with_a_ticked_checkbox_and_counts():
    panel, _ = _stand_in_panel()
    assert [box.value for box in panel.changes] == [True, True, True]
    assert panel.changes[2].description == "2 · Person.lastName: (empty) → Smit"
    assert panel.counts_text == (
        "3 changes planned in 2 records: 3 to write in 2 records, 0 left out."
    )
    assert not panel.apply_button.disabled and panel.undo_button.disabled

    panel.changes[0].value = False
    assert panel.excluded == [("1", "Person.lastName")]
    assert panel.counts_text.endswith("2 to write in 2 records, 1 left out.")
    panel.none_button.click()
    assert panel.counts_text.endswith("0 to write in 0 records, 3 left out.")
    panel.all_button.click()
    assert panel.excluded == []


def test_review_applies_without_the_excluded_change_then_undoes():
    panel, store = _stand_in_panel()
    panel.exclude(("1", "statusId"))
    panel.apply_button.click()

    assert panel.plan.applied_with == [("1", "statusId")]
    assert store == {
        ("1", "Person.lastName"): "Janssen",
        ("1", "statusId"): "2",
        ("2", "Person.lastName"): "Smit",
    }
    assert panel.message_text == "Written: written 2, skipped 1."
    assert panel.apply_button.disabled and panel.all_button.disabled
    assert all(box.disabled for box in panel.changes)
    assert not panel.undo_button.disabled
    assert repr(panel) == "ReviewPanel(CandidateService, applied)"

    first_report = panel.report
    panel.apply_button.click()  # disabled: a second apply does nothing
    assert panel.report is first_report
    panel.undo_button.click()
    assert store[("1", "Person.lastName")] == "Jansen"
    assert store[("1", "statusId")] == "2"
    assert pd.isna(store[("2", "Person.lastName")])
    assert panel.message_text == "Undone: written 2."
    assert panel.undo_button.disabled
    first_undo = panel.undo_report
    panel.undo_button.click()
    assert panel.undo_report is first_undo


def test_review_with_every_change_unticked_writes_nothing_and_stays_usable():
    panel, store = _stand_in_panel()
    before = dict(store)
    panel.none_button.click()
    panel.apply_button.click()

    assert store == before and panel.report is None
    assert panel.message_text.startswith("No change is ticked")
    assert not any(box.disabled for box in panel.changes)

    panel.all_button.click()
    panel.apply_button.click()
    assert panel.report is not None
    assert panel.message_text == "Written: written 3."


def test_review_keeps_apply_available_when_applying_fails():
    panel, store = _stand_in_panel()
    before = dict(store)
    panel.plan.fail = True
    panel.apply_button.click()

    assert store == before
    assert "please login again" in panel.message_text
    assert panel.report is None
    assert not panel.apply_button.disabled and panel.undo_button.disabled


def test_review_shows_an_invalid_edit_as_a_message():
    problem = InvalidInput(
        "the edit cannot be written", ["row '7', column 'statusId': no option 'Hired'"]
    )
    panel = widgets.review(
        PlanningSession(problem), "Candidate", pd.DataFrame(), pd.DataFrame()
    )

    assert panel.plan is None
    assert "no option 'Hired'" in panel.message_text
    assert panel.apply_button.disabled and panel.none_button.disabled
    panel.apply_button.click()
    panel.none_button.click()
    assert "no option 'Hired'" in panel.message_text and panel.report is None


def test_review_of_an_edit_without_changes_has_nothing_to_apply():
    empty = StandInPlan({}, [])
    panel = widgets.review(
        PlanningSession(empty), "Candidate", pd.DataFrame(), pd.DataFrame()
    )
    assert panel.changes == [] and panel.apply_button.disabled
    assert "Nothing to write" in panel.message_text


def test_review_offers_only_planned_changes_and_counts_the_others():
    changes = [
        ("1", "statusId", "2", "3"),
        ("2", "statusId", "2", "4"),
        ("3", "statusId", "1", "1"),
    ]
    plan = StandInPlan({}, changes)
    plan.frame["status"] = ["planned", "conflict", "unchanged"]
    plan.frame["error"] = [None, None, None]
    plan.frame["server"] = [None, "5", None]
    plan.counts = {"planned": 1, "unchanged": 1, "conflict": 1}
    panel = widgets.review(
        PlanningSession(plan), "Candidate", pd.DataFrame(), pd.DataFrame()
    )

    assert [(box.value, box.disabled) for box in panel.changes] == [
        (True, False),
        (False, True),
        (False, True),
    ]
    assert (
        panel.changes[1].description
        == "2 · statusId: 2 → 4  [conflict: the server now holds 5]"
    )
    assert panel.changes[2].description == "3 · statusId: 1 → 1  [unchanged]"
    assert panel.counts_text == (
        "1 change planned in 1 record: 1 to write in 1 record, 0 left out. "
        "Not to be written: unchanged 1, conflict 1."
    )
    panel.none_button.click()
    assert panel.excluded == [("1", "statusId")]
    with pytest.raises(InvalidInput, match="no planned change"):
        panel.exclude(("2", "statusId"))


def test_review_refuses_to_exclude_a_change_that_is_not_planned():
    panel, _ = _stand_in_panel()
    with pytest.raises(InvalidInput, match="no planned change") as caught:
        panel.exclude(("9", "statusId"))
    assert "9 / statusId" in str(caught.value)


# ---- against a real sandbox ----------------------------------------------------------


@pytest.fixture(scope="module")
def srv():
    from otyspd.sandbox import serve

    with serve(records=200, rate_limit=None) as server:
        yield server


@pytest.fixture
def session(srv):
    opened = otyspd.connect(
        api_key=srv.api_key, url=srv.url, username=srv.username, password=srv.password
    )
    yield opened
    opened.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _all_state(widget: Any) -> str:
    """Everything a saved notebook would hold of a widget tree, as one text."""
    parts = [json.dumps(widget.get_state(), default=str)]
    for child in getattr(widget, "children", ()):
        parts.append(_all_state(child))
    return "\n".join(parts)


def test_connect_form_connects_to_the_sandbox_and_keeps_no_key(srv):
    form = widgets.connect_form(url=srv.url)
    form.key.value = srv.api_key
    form.username.value = srv.username
    form.password.value = srv.password
    form.connect_button.click()
    try:
        assert form.session is not None
        assert session_module._last_session is form.session
        assert form.session.check()["username"] == form.session.user["username"]
        user = form.session.user
        assert (
            form.message_text == f"Connected to {user['client']} as {user['username']}."
        )

        token = form.session._transport.token
        assert form.key.value == "" and form.password.value == ""
        shown = [
            repr(form),
            repr(form.widget),
            _all_state(form.widget),
            form.message.value,
        ]
        for text in shown:
            assert srv.api_key not in text
            assert srv.password not in text
            assert token not in text
            assert " at 0x" not in text
    finally:
        form.session.close()


def test_connect_form_with_the_sandbox_ticked_starts_one(monkeypatch):
    monkeypatch.setattr(session_module, "_last_session", None)
    form = widgets.connect_form(sandbox=True, records=200)
    form.connect_button.click()
    try:
        assert form.session.simulated
        assert form.message_text.endswith("(simulated data).")
        assert widgets.explorer().session is form.session
    finally:
        form.session.close()
    with pytest.raises(InvalidInput, match="connect first"):
        widgets.explorer()


def _descendants(widget: Any) -> list:
    children = list(getattr(widget, "children", ()))
    return children + [d for child in children for d in _descendants(child)]


def test_every_form_shows_its_parts_in_one_widget(session):
    form = widgets.connect_form()
    ex = widgets.explorer(session)
    panel, _ = _stand_in_panel()
    expected = {
        form: [form.key, form.url, form.sandbox, form.connect_button, form.message],
        ex: [ex.service, ex.fields, ex.sort_field, ex.preview_button, ex.load_button],
        panel: [panel.changes[0], panel.apply_button, panel.undo_button, panel.output],
    }
    for shown, parts in expected.items():
        inside = _descendants(shown.widget)
        assert all(any(part is d for d in inside) for part in parts), shown
        assert callable(shown._ipython_display_)


def test_connect_form_shows_a_wrong_key_as_a_message(srv):
    form = widgets.connect_form(url=srv.url)
    form.key.value = "not-the-sandbox-key"
    form.connect_button.click()

    assert form.session is None
    assert form.key.value == ""
    assert form.message_text.startswith("OWS error")
    assert "not-the-sandbox-key" not in form.message.value
    assert "Traceback" not in form.message_text
    assert not form.connect_button.disabled


def test_connect_form_shows_an_unreachable_server_as_a_message():
    url = f"http://127.0.0.1:{_closed_port()}/jservice.php"
    form = widgets.connect_form(url=url, retries=0, timeout=5)
    form.key.value = KEY
    form.connect_button.click()

    assert form.session is None
    assert form.key.value == ""
    assert "127.0.0.1" in form.message_text
    assert KEY not in form.message.value
    assert "Traceback" not in form.message_text


def test_explorer_previews_and_loads_what_read_list_reads(session):
    condition_value = 2
    ex = widgets.explorer(session)
    assert "Person.lastName" in ex.fields.options
    ex.fields.value = ("Person.lastName", "statusId")
    ex.add_row("statusId", "==", str(condition_value))
    ex.add_row("Person.lastName", "not like", "")  # blank value: the row is incomplete
    ex.rows[1].remove_button.click()
    ex.sort_field.value = "Person.lastName"
    ex.sort_order.value = "desc"

    ex.preview_button.click()
    expected_page = session.read_list(
        "Candidate",
        ["Person.lastName", "statusId"],
        F("statusId") == condition_value,
        sort=["-Person.lastName"],
        limit=20,
    )
    assert ex.message_text == f"Preview: the first {len(expected_page)} rows."
    assert len(expected_page) == 20
    pd.testing.assert_frame_equal(ex.preview_frame, expected_page)
    shown = ex.output.outputs[0]["data"]["text/plain"]
    assert expected_page.index[0] in shown

    ex.load_button.click()
    expected = session.read_list(
        "Candidate", ["Person.lastName", "statusId"], F("statusId") == condition_value
    )
    assert 20 < len(expected) < 200
    assert len(ex.frame) == len(expected)
    assert sorted(ex.frame.index) == sorted(expected.index)
    assert (
        ex.message_text == f"Loaded {len(expected)} rows; the frame is explorer.frame."
    )
    assert repr(ex) == f"Explorer(CandidateService, frame of {len(expected)} rows)"


def test_explorer_shows_a_field_the_server_rejects_as_a_message(session):
    ex = widgets.explorer(session)
    ex.extra_fields.value = "Person.noSuchField"
    ex.preview_button.click()

    assert ex.preview_frame is None
    assert "Person.noSuchField" in ex.message_text


def test_review_applies_all_but_the_excluded_change_and_undo_restores(srv, session):
    original = session.read_list(
        "Candidate", ["Person.firstName", "Person.lastName"], limit=3, sort=["uid"]
    )
    a, b, c = original.index
    edited = original.copy()
    edited.loc[a, "Person.lastName"] = "Widgetson"
    edited.loc[b, "Person.lastName"] = "Leftout"
    edited.loc[c, "Person.firstName"] = "Reviewa"
    before = {uid: srv.get("CandidateService", uid)["Person"] for uid in (a, b, c)}

    panel = widgets.review(session, "Candidate", original, edited)
    assert panel.counts_text == (
        "3 changes planned in 3 records: 3 to write in 3 records, 0 left out."
    )
    panel.exclude((b, "Person.lastName"))
    assert panel.counts_text.endswith("2 to write in 2 records, 1 left out.")
    panel.apply_button.click()

    assert panel.report.counts == {"written": 2, "skipped": 1}
    assert panel.message_text == "Written: written 2, skipped 1."
    assert srv.get("CandidateService", a)["Person"]["lastName"] == "Widgetson"
    assert srv.get("CandidateService", b)["Person"]["lastName"] == before[b]["lastName"]
    assert srv.get("CandidateService", c)["Person"]["firstName"] == "Reviewa"
    assert panel.apply_button.disabled and not panel.undo_button.disabled

    panel.undo_button.click()
    assert panel.undo_report.counts == {"written": 2}
    assert panel.message_text == "Undone: written 2."
    for uid in (a, b, c):
        person = srv.get("CandidateService", uid)["Person"]
        assert person["lastName"] == before[uid]["lastName"]
        assert person["firstName"] == before[uid]["firstName"]
    assert panel.undo_button.disabled
