"""The notebook widgets, driven from Python: fill in their parts, press buttons.

The first tests use a stand-in session to pin down the forms' own logic (the
key is wiped, bad input becomes a message). The rest drive the widgets
against a real sandbox on 127.0.0.1 and check what reached the server.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from otyspd import session as session_module
from otyspd import widgets
from otyspd.errors import AccessDenied, InvalidInput
from otyspd.schema import FieldDef

KEY = "k3y-that-must-never-show-up"


class StandInSession:
    """Records what the explorer asks; returns a small frame."""

    def __init__(self) -> None:
        self.user = {"client": "Recruitment Heroes", "username": "partner.heroes"}
        self.reads: list[dict] = []
        self.logged_out = False

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
        frame = pd.DataFrame(
            {p: ["a", "b"] for p in what}, index=pd.Index(["1", "2"], name="uid")
        )
        return frame

    def logout(self) -> None:
        self.logged_out = True


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


# ---- connect form, with a stand-in connect -------------------------------------


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


def test_connecting_again_logs_the_previous_session_out(fake_connect):
    form = widgets.connect_form(url="http://127.0.0.1:9/jservice.php")
    form.key.value = KEY
    form.connect_button.click()
    first = form.session
    form.key.value = KEY
    form.connect_button.click()

    assert first.logged_out
    assert form.session is not first


# ---- explorer, with a stand-in session -------------------------------------------


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
