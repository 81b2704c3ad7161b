"""Field definition pages: the HTML parser, type names, fetching and caching."""

from __future__ import annotations

import pytest

from otyspd import fields
from otyspd.errors import ConfigurationError, ProtocolError

PLAIN = """
<html><body><h1>Otys.Services.CandidateService</h1>
<table class="fields">
  <tr><th>Name</th><th>Type</th><th>Listable</th><th>Filterable</th><th>Sortable</th>
      <th>Updatable</th><th>Obligatory</th><th>Deletable</th><th>Insertable</th>
      <th>Has options</th><th>Not empty</th><th>Has hints</th><th>In list by default</th>
      <th>Data type comment</th><th>Comment</th></tr>
  <tr><td>uid</td><td>string</td><td>yes</td><td>yes</td><td>yes</td><td>no</td><td>no</td>
      <td>no</td><td>no</td><td>no</td><td>no</td><td>no</td><td>yes</td><td></td>
      <td>The record&#39;s OUID</td></tr>
  <tr><td>statusId</td><td>int</td><td>1</td><td>1</td><td>1</td><td>1</td><td>0</td>
      <td>0</td><td>1</td><td>1</td><td>0</td><td>0</td><td>1</td><td></td><td></td></tr>
  <tr><td>Person.birthdate</td><td>date</td><td>&#10003;</td><td>&#10003;</td><td></td>
      <td>&#10003;</td><td></td><td></td><td>&#10003;</td><td></td><td></td><td></td><td></td>
      <td>YYYY-MM-DD</td><td></td></tr>
</table></body></html>
"""

CHECKBOXES = """
<table>
 <thead><tr><td> FIELD NAME </td><td>Data&nbsp;type</td><td>UPDATEABLE</td>
   <td>has_options</td><td>In list by default</td><td>Remarks</td></tr></thead>
 <tbody>
 <tr><td>&#9654; Person</td><td>Container</td><td><input type="checkbox" checked disabled></td>
   <td><input type="checkbox" disabled/></td><td><input type=checkbox></td><td>who</td></tr>
 <tr data-level="1"><td>firstName</td><td>VARCHAR(50)</td><td><input type="checkbox" checked></td>
   <td><input type="checkbox"></td><td><input type="checkbox" checked></td><td></td></tr>
 <tr data-level="1"><td>AddressPrimary</td><td>object</td><td><input type="checkbox" checked></td>
   <td><input type="checkbox"></td><td><input type="checkbox"></td><td></td></tr>
 <tr data-level="2"><td>city</td><td>text</td><td><input type="checkbox" checked></td>
   <td><input type="checkbox"></td><td><input type="checkbox"></td><td></td></tr>
 <tr class="row level-0"><td>matchCriteria_1</td><td>array</td><td>TRUE</td><td>True</td>
   <td>false</td><td>ids</td></tr>
 <tr data-parent="matchCriteria_1"><td>value</td><td>bool</td><td>Y</td><td>N</td><td>-</td>
   <td></td></tr>
 </tbody>
</table>
"""


def test_plain_table_reads_every_attribute():
    defs = fields.parse_field_page(PLAIN)

    assert list(defs) == ["uid", "statusId", "Person.birthdate"]
    uid = defs["uid"]
    assert (uid.type, uid.listable, uid.updatable, uid.in_list_by_default) == (
        "string",
        True,
        False,
        True,
    )
    assert uid.comment == "The record's OUID"
    assert defs["statusId"].type == "integer"
    assert defs["statusId"].has_options and defs["statusId"].insertable
    birth = defs["Person.birthdate"]
    assert (birth.type, birth.listable, birth.sortable, birth.type_comment) == (
        "date",
        True,
        False,
        "YYYY-MM-DD",
    )


def test_checkboxes_odd_headers_and_row_levels_give_dotted_names():
    defs = fields.parse_field_page(CHECKBOXES)

    assert list(defs) == [
        "Person",
        "Person.firstName",
        "Person.AddressPrimary",
        "Person.AddressPrimary.city",
        "matchCriteria_1",
        "matchCriteria_1.value",
    ]
    assert defs["Person"].type == "container" and defs["Person"].updatable
    assert not defs["Person"].has_options and not defs["Person"].in_list_by_default
    assert defs["Person.firstName"].type == "string"
    assert defs["Person.firstName"].in_list_by_default
    assert defs["Person.AddressPrimary"].type == "container"
    assert defs["Person.AddressPrimary.city"].type == "text"
    assert (
        defs["matchCriteria_1"].type == "collection"
        and defs["matchCriteria_1"].has_options
    )
    assert defs["matchCriteria_1"].comment == "ids"
    assert defs["matchCriteria_1.value"].type == "boolean"
    assert (
        defs["matchCriteria_1.value"].updatable
        and not defs["matchCriteria_1.value"].has_options
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("int", "integer"),
        ("Integer", "integer"),
        ("number", "integer"),
        ("float", "float"),
        ("decimal(10,2)", "float"),
        ("bool", "boolean"),
        ("Boolean", "boolean"),
        ("datetime", "datetime"),
        ("Date Time", "datetime"),
        ("date", "date"),
        ("string", "string"),
        ("varchar(255)", "string"),
        ("text", "text"),
        ("collection", "collection"),
        ("container", "container"),
        ("object", "container"),
        ("something new", "string"),
        ("", "string"),
    ],
)
def test_type_names_map_onto_the_field_types(raw, expected):
    assert fields.type_name(raw) == expected


@pytest.mark.parametrize(
    "html",
    [
        "",
        "<html><body>Login required</body></html>",
        "<table><tr><th>Name</th><th>Comment</th></tr><tr><td>uid</td><td></td></tr></table>",
        "<table><tr><th>Name</th><th>Type</th></tr></table>",
    ],
)
def test_a_page_without_a_field_table_is_a_protocol_error(html):
    with pytest.raises(ProtocolError, match="no table"):
        fields.parse_field_page(html)


def test_an_unreadable_yes_no_value_names_the_row_and_column():
    html = (
        "<table><tr><th>Name</th><th>Type</th><th>Sortable</th></tr>"
        "<tr><td>uid</td><td>string</td><td>maybe</td></tr></table>"
    )
    with pytest.raises(
        ProtocolError, match=r"'maybe' at row 1 \(uid\), column sortable"
    ):
        fields.parse_field_page(html)


class _Response:
    def __init__(
        self, status: int, text: str, kind: str = "text/html; charset=utf-8"
    ) -> None:
        self.status_code = status
        self.text = text
        self.headers = {"Content-Type": kind}


class _Http:
    def __init__(self, response: _Response) -> None:
        self.response = response
        self.requests: list[tuple] = []

    def get(self, url, params=None, auth=None, timeout=None, verify=True):
        self.requests.append((url, params, auth))
        return self.response


class FakeSession:
    url = "http://127.0.0.1:9/ows/jservice.php"

    def __init__(self, response: _Response, username: str | None = "me") -> None:
        self.http = _Http(response)
        self._cache: dict = {}
        self.username = username
        self.password = "pw" if username else None


def test_fields_frame_fetches_the_page_with_basic_auth_and_types_its_columns():
    session = FakeSession(_Response(200, PLAIN))

    frame = fields.fields_frame(session, "Candidate")

    assert session.http.requests == [
        (
            "http://127.0.0.1:9/ows/info/detail.php",
            {"service": "Otys.Services.CandidateService"},
            ("me", "pw"),
        )
    ]
    assert frame.index.name == "name"
    assert list(frame.columns) == list(fields.COLUMNS)
    assert str(frame["listable"].dtype) == "boolean"
    assert str(frame["type"].dtype) == "string"
    assert frame.loc["statusId", "type"] == "integer"
    # Cached: a second read and field_defs make no request.
    fields.fields_frame(session, "CandidateService")
    assert set(fields.field_defs(session, "Otys.Services.CandidateService")) == set(
        frame.index
    )
    assert len(session.http.requests) == 1


@pytest.mark.parametrize(
    ("response", "username", "error", "message"),
    [
        (_Response(200, PLAIN), None, ConfigurationError, "OTYS_USERNAME"),
        (_Response(401, "no"), "me", ConfigurationError, "refused the username"),
        (_Response(200, "<p>maintenance</p>"), "me", ProtocolError, "no table"),
        (_Response(200, "{}", "application/json"), "me", ProtocolError, "not HTML"),
    ],
)
def test_an_unreadable_page_raises_from_fields_and_gives_none_from_field_defs(
    response, username, error, message, monkeypatch
):
    monkeypatch.delenv("OTYS_USERNAME", raising=False)
    monkeypatch.delenv("OTYS_PASSWORD", raising=False)

    with pytest.raises(error, match=message):
        fields.fields_frame(FakeSession(response, username), "Candidate")

    session = FakeSession(response, username)
    assert fields.field_defs(session, "Candidate") is None
    assert fields.field_defs(session, "Candidate") is None
    assert len(session.http.requests) <= 1


def test_credentials_fall_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("OTYS_USERNAME", "envuser")
    monkeypatch.setenv("OTYS_PASSWORD", "envpw")
    session = FakeSession(_Response(200, PLAIN), username=None)

    fields.fields_frame(session, "Candidate")

    assert session.http.requests[0][2] == ("envuser", "envpw")


# ---- against the sandbox -------------------------------------------------------------


@pytest.fixture(scope="module")
def live():
    from otyspd import connect
    from otyspd.sandbox import serve

    srv = serve(records=200, rate_limit=None)
    session = connect(
        srv.api_key, srv.url, username=srv.username, password=srv.password
    )
    yield srv, session
    session.close()
    srv.stop()


@pytest.mark.parametrize(
    "service",
    [
        "CandidateService",
        "VacancyService",
        "RelationService",
        "RelationContactService",
        "UserService",
        "DocumentTypeService",
    ],
)
def test_fields_of_each_main_service_match_what_the_sandbox_declares(live, service):
    from otyspd.sandbox.schema import SERVICES

    _, session = live
    frame = session.fields(service)

    declared = {f.name: f for f in SERVICES[service].fields}
    assert list(frame.index) == list(declared)
    assert session.field_defs(service) == declared


def test_vacancy_titles_are_read_as_multilingual(live):
    _, session = live
    frame = session.fields("Vacancy")
    assert frame.loc["title", "multilingual"]
    assert not frame.loc["uid", "multilingual"]


def test_wrong_credentials_or_service_on_the_sandbox(live):
    from otyspd import connect
    from otyspd.errors import HTTPStatusError

    srv, session = live
    with pytest.raises(HTTPStatusError, match="HTTP 404"):
        session.fields("NoSuchService")
    assert session.field_defs("NoSuchService") is None

    other = connect(srv.api_key, srv.url, username=srv.username, password="wrong")
    try:
        with pytest.raises(ConfigurationError, match="refused the username"):
            other.fields("Candidate")
        assert other.field_defs("Candidate") is None
    finally:
        other.close()
