"""Property tests: bad input gets a clear otyspd error, never anything else.

- Conditions (F trees and raw dicts) compile to a valid OWS tree or raise
  InvalidInput.
- ``what`` (dotted strings, lists, nested dicts) gives valid paths or raises
  InvalidInput.
- Frames edited at random (missing values of every kind, wrong types, NFC and
  NFD text, duplicate uids, reordered or renamed columns, a changed index) go
  through ``diff`` and ``write_back`` against a sandbox: each run either writes
  exactly the intended cells, checked on the server, or raises an otyspd error
  before writing anything.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import unicodedata
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import otyspd
from otyspd import query
from otyspd.errors import InvalidInput, OtysError
from otyspd.query import OPERATORS, F
from otyspd.sandbox import serve

BOUNDED = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TZ = "Europe/Amsterdam"

# ---- conditions ----------------------------------------------------------------------

field_names = st.one_of(
    st.sampled_from(["statusId", "Person.lastName", "a.b.c", "uid"]),
    st.text(max_size=8),
    st.integers(),
    st.none(),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=6),
    st.dates(),
    st.datetimes(),
    st.datetimes(
        timezones=st.sampled_from(
            [dt.timezone.utc, dt.timezone(dt.timedelta(hours=-11))]
        )
    ),
    st.decimals(allow_nan=True),
    st.complex_numbers(),
    st.sampled_from(
        [
            pd.NA,
            pd.NaT,
            np.int64(7),
            np.float64("nan"),
            np.bool_(True),
            pd.Timestamp("2024-03-31 00:30", tz=TZ),
        ]
    ),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=2), scalars, max_size=2),
    st.sets(st.integers(), max_size=2),
)
OPS = [
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "like",
    "not_like",
    "is_true",
    "is_false",
    "isin",
]


def _leaf(field: Any, op: str, value: Any):
    def build():
        f = F(field)
        return {
            "==": lambda: f == value,
            "!=": lambda: f != value,
            "<": lambda: f < value,
            "<=": lambda: f <= value,
            ">": lambda: f > value,
            ">=": lambda: f >= value,
            "like": lambda: f.like(value),
            "not_like": lambda: f.not_like(value),
            "is_true": f.is_true,
            "is_false": f.is_false,
            "isin": lambda: f.isin(value),
        }[op]()

    return build


def _combine(kind: str, *parts):
    def build():
        built = [p() for p in parts]
        if kind == "and":
            return built[0] & built[1]
        if kind == "or":
            return built[0] | built[1]
        if kind == "not":
            return ~built[0]
        return built[0] & built[1]  # a value that is not a condition, on one side

    return build


condition_builders = st.recursive(
    st.builds(_leaf, field_names, st.sampled_from(OPS), values),
    lambda inner: st.one_of(
        st.builds(_combine, st.just("and"), inner, inner),
        st.builds(_combine, st.just("or"), inner, inner),
        st.builds(_combine, st.just("not"), inner),
        st.builds(_combine, st.just("bad"), inner, st.just(lambda: 3)),
    ),
    max_leaves=6,
)

raw_conditions = st.recursive(
    st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["COND", "cond", "X", 1])},
            optional={
                "field": field_names,
                "op": st.one_of(
                    st.sampled_from(sorted(OPERATORS)), st.text(max_size=3)
                ),
                "param": values,
            },
        ),
        st.dictionaries(st.text(max_size=6), values, max_size=3),
        values,
    ),
    lambda inner: st.fixed_dictionaries(
        {"type": st.sampled_from(["AND", "OR", "and", "XOR"])},
        optional={"items": st.one_of(st.lists(inner, max_size=3), inner)},
    ),
    max_leaves=6,
)


def _check_scalar(value: Any) -> None:
    assert value is None or isinstance(value, (bool, int, float, str)), value
    if isinstance(value, float):
        assert math.isfinite(value)


def _check_ows(node: Any) -> None:
    """Assert ``node`` is a valid OWS condition tree."""
    assert isinstance(node, dict)
    kind = node["type"]
    if kind in ("AND", "OR"):
        assert set(node) == {"type", "items"}
        assert isinstance(node["items"], list) and node["items"]
        for item in node["items"]:
            _check_ows(item)
        return
    assert kind == "COND"
    field, op = node["field"], node["op"]
    assert isinstance(field, str) and field == field.strip() and field
    assert all(field.split(".")), field
    assert op in OPERATORS
    if op in ("T", "F"):
        assert "param" not in node
        return
    param = node["param"]
    if isinstance(param, list):
        assert op in ("EQ", "NE") and param
        for p in param:
            _check_scalar(p)
    else:
        _check_scalar(param)
    if op in ("LIKE", "NLIKE"):
        assert isinstance(param, str)


def _compile_or_invalid(build) -> dict | None:
    try:
        tree = query.compile_condition(build())
    except InvalidInput:
        return None
    assert tree is not None
    _check_ows(tree)
    json.dumps(tree, allow_nan=False)
    return tree


@BOUNDED
@given(condition_builders)
def test_f_trees_compile_to_a_valid_ows_tree_or_raise_invalid_input(build):
    _compile_or_invalid(build)


@BOUNDED
@given(raw_conditions)
def test_raw_condition_dicts_compile_to_a_valid_ows_tree_or_raise_invalid_input(raw):
    try:
        tree = query.compile_condition(raw)
    except InvalidInput:
        return
    if tree is not None:
        _check_ows(tree)
        json.dumps(tree, allow_nan=False)


def test_far_dates_in_a_condition_are_refused_as_input():
    # Regression: an aware datetime near year 1 or 9999 overflowed when turned into
    # a UTC instant, raising OverflowError instead of InvalidInput.
    low = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    with pytest.raises(InvalidInput, match="cannot be sent"):
        query.compile_condition(F("entryDateTime") >= low)
    with pytest.raises(InvalidInput, match="cannot be sent"):
        query.compile_condition(F("entryDateTime") < dt.datetime(1, 1, 1))


# ---- what ----------------------------------------------------------------------------

segments = st.one_of(
    st.sampled_from(["Person", "firstName", "uid", "statusId", "a"]),
    st.text(alphabet="ab. ", max_size=4),
)
dotted = st.lists(segments, min_size=1, max_size=3).map(".".join)
what_values = st.recursive(
    st.one_of(st.sampled_from([0, 1, True, False, None, 2, "1", 1.0]), st.just({})),
    lambda inner: st.dictionaries(
        st.one_of(segments, dotted, st.integers()), inner, max_size=3
    ),
    max_leaves=8,
)
whats = st.one_of(
    dotted,
    st.lists(st.one_of(dotted, st.integers(), st.none()), max_size=4),
    st.dictionaries(st.one_of(segments, dotted), what_values, max_size=4),
    st.integers(),
    st.none(),
)


@BOUNDED
@given(whats)
def test_what_gives_valid_paths_or_raises_invalid_input(what):
    try:
        paths = query.normalize_what(what)
    except InvalidInput:
        return
    assert paths[0] == "uid" and paths.count("uid") == 1
    assert len(set(paths)) == len(paths)
    for path in paths:
        assert isinstance(path, str) and path == path.strip()
        assert all(path.split(".")), path
    # The paths nest into a what dict and back, unchanged.
    assert query.paths_from_what(query.what_from_paths(paths)) == paths


# ---- frames through diff and write_back ----------------------------------------------

SERVICE = "Candidate"
ROWS = 6
KINDS = {
    "Person.firstName": "string",
    "personalNr": "string",
    "noticeTerm": "string",
    "statusId": "label",
    "acceptTerms": "boolean",
    "ownsCar": "boolean",
    "availableAt": "date",
    "acceptTermsTs": "datetime",
}
COLUMNS = list(KINDS)


@pytest.fixture(scope="module")
def env():
    srv = serve(records=400, rate_limit=None, seed=3)
    session = otyspd.connect(
        srv.api_key, srv.url, username=srv.username, password=srv.password
    )
    labels = session.options(SERVICE, ["statusId"])["statusId"]
    yield srv, session, {str(k): v for k, v in labels.items()}
    session.close()
    srv.stop()


ACCENTED = "aeiouAEIOUéëèïñÅåçøß "
texts = st.tuples(
    st.text(alphabet=ACCENTED, min_size=1, max_size=8), st.sampled_from(["NFC", "NFD"])
).map(lambda t: unicodedata.normalize(t[1], t[0]))
missing = st.sampled_from([None, float("nan"), pd.NA, pd.NaT, np.nan])
midnight = st.dates(min_value=dt.date(1950, 1, 1), max_value=dt.date(2030, 12, 31))
seconds = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2030, 12, 31)
).map(lambda d: d.replace(microsecond=0))

#: (strategy, is the value wrong for the column) per kind.
GOOD = {
    "string": st.one_of(texts, st.just("")),
    "boolean": st.one_of(st.booleans(), st.sampled_from([np.bool_(False), 0, 1])),
    "date": st.one_of(midnight, midnight.map(pd.Timestamp)),
    "datetime": st.one_of(
        seconds.map(lambda d: pd.Timestamp(d, tz=TZ)),
        seconds.map(lambda d: pd.Timestamp(d, tz="UTC")),
    ),
}
BAD = {
    "string": st.sampled_from([3.5, 7, [1, 2], {"a": 1}, True]),
    "boolean": st.sampled_from(["maybe", 2.5, [True], 7]),
    "date": st.one_of(
        st.sampled_from(["not a date", "2024-02-30", 12.5, [1]]),
        seconds.filter(lambda d: d.time() != dt.time(0)).map(pd.Timestamp),
    ),
    "datetime": st.sampled_from(["not a date", "2024-13-01 10:00:00", 4.5, [1]]),
    "label": st.sampled_from(["No such status", 3.5, 2, ["Actief"]]),
}


@st.composite
def cell_edits(draw, labels: dict[str, str]):
    column = draw(st.sampled_from(COLUMNS))
    kind = KINDS[column]
    row = draw(st.integers(0, ROWS - 1))
    choice = draw(st.sampled_from(["good", "good", "missing", "bad", "same_nfd"]))
    if choice == "missing":
        return row, column, draw(missing), False
    if choice == "bad":
        return row, column, draw(BAD[kind]), True
    if choice == "same_nfd":
        return row, column, "same_nfd", False
    if kind == "label":
        return row, column, draw(st.sampled_from(sorted(set(labels.values())))), False
    return row, column, draw(GOOD[kind]), False


MUTATIONS = [
    "none",
    "none",
    "reorder_columns",
    "reorder_rows",
    "drop_column",
    "unnamed_index",
    "duplicate_uid",
    "rename_column",
    "reset_index",
    "integer_positions",
]
#: Frame changes that must be refused whatever the cells hold.
REFUSED = {"duplicate_uid", "rename_column", "reset_index", "integer_positions"}


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (list, dict, str)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _server_form(value: Any, kind: str, labels: dict[str, str]) -> Any:
    """What the server should hold after writing ``value`` (None for missing or empty text)."""
    if _is_missing(value) or (kind == "string" and value == ""):
        return None
    if kind == "string":
        return unicodedata.normalize("NFC", value)
    if kind == "label":
        ids = [i for i, label in labels.items() if label == value]
        return int(ids[0])
    if kind == "boolean":
        return bool(value)
    if kind == "date":
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    ts = pd.Timestamp(value)
    ts = ts.tz_convert(TZ).tz_localize(None) if ts.tzinfo else ts
    return ts.strftime("%Y-%m-%d %H:%M:%S")


def _stored(record: dict, column: str, kind: str) -> Any:
    """A server value in the same form as :func:`_server_form`."""
    node: Any = record
    for part in column.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None or (isinstance(node, str) and node.startswith("0000-00-00")):
        return None
    if kind == "string" and node == "":  # empty text and null are the same value
        return None
    if kind == "boolean":
        return node in (True, 1, "1")
    if kind == "label":
        return int(node)
    return node


def _frozen(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("lastModified", "age")}


def _flat(record: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> value of a server record, without the fields a write moves."""
    flat: dict[str, Any] = {}
    for key, value in _frozen(record).items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_are_written_exactly_or_refused_before_writing(env, data):
    srv, session, labels = env
    start = data.draw(st.integers(0, 400 // ROWS - 1), label="block") * ROWS
    # Read the rows fresh: earlier examples may have written to them.
    block = session.read_list(
        SERVICE, COLUMNS, limit=ROWS, offset=start, progress=False
    )
    assert len(block) == ROWS
    uids = list(block.index)
    before = {uid: srv.get(SERVICE, uid) for uid in uids}

    edited = block.copy()
    final: dict[tuple[str, str], tuple[Any, bool]] = {}
    for row, column, value, wrong in data.draw(
        st.lists(cell_edits(labels), max_size=6), label="edits"
    ):
        uid = uids[row]
        if isinstance(value, str) and value == "same_nfd":
            current = edited.at[uid, column]
            if not isinstance(current, str):
                continue
            value = unicodedata.normalize("NFD", current)
        if isinstance(value, (list, dict)):
            # pandas would unpack a list into a typed column: hold it as an object.
            edited[column] = edited[column].astype(object)
        try:
            edited.at[uid, column] = value
        except (TypeError, ValueError):
            edited[column] = edited[column].astype(object)
            edited.at[uid, column] = value
        final[(uid, column)] = (value, wrong)
    mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    dropped = None
    if mutation == "reorder_columns":
        edited = edited[list(reversed(edited.columns))]
    elif mutation == "reorder_rows":
        edited = edited.iloc[::-1]
    elif mutation == "drop_column":
        dropped = data.draw(st.sampled_from(COLUMNS), label="dropped")
        edited = edited.drop(columns=[dropped])
    elif mutation == "unnamed_index":
        edited.index.name = None
    elif mutation == "duplicate_uid":
        edited = pd.concat([edited, edited.iloc[[0]]])
    elif mutation == "rename_column":
        edited = edited.rename(columns={COLUMNS[0]: COLUMNS[0] + "_x"})
    elif mutation == "reset_index":
        edited = edited.reset_index()
    elif mutation == "integer_positions":
        edited = edited.reset_index(drop=True)

    # The cells meant to change: edited, not wrong, and different from the server.
    intended: dict[tuple[str, str], Any] = {}
    wrong_cells = False
    for (uid, column), (value, wrong) in final.items():
        if column == dropped:
            continue
        kind = KINDS[column]
        if wrong:
            wrong_cells = True
            continue
        want = _server_form(value, kind, labels)
        if want != _stored(before[uid], column, kind):
            intended[(uid, column)] = want

    # diff never raises anything but an otyspd error.
    with contextlib.suppress(OtysError):
        session.diff(SERVICE, block, edited)

    updates = srv.stats["calls"]["CandidateService.update"]
    try:
        report = session.write_back(SERVICE, block, edited, progress=False)
    except OtysError:
        # Refused: nothing may have been sent, and nothing changed.
        assert srv.stats["calls"]["CandidateService.update"] == updates
        for uid in uids:
            assert _frozen(srv.get(SERVICE, uid)) == _frozen(before[uid])
        return
    assert mutation not in REFUSED, f"{mutation} should have been refused"
    assert not wrong_cells, "a value of the wrong type should have been refused"

    frame = report.frame
    done = {
        (str(r.uid), str(r.field))
        for r in frame.itertuples()
        if r.status in ("written", "unchanged")
    }
    assert set(frame["status"]) <= {"written", "unchanged"}, frame
    assert done == set(intended), (done, intended)
    for uid in uids:
        after = srv.get(SERVICE, uid)
        for column, kind in KINDS.items():
            want = intended.get((uid, column), _stored(before[uid], column, kind))
            assert _stored(after, column, kind) == want, (uid, column)
        # No other field moved either.
        untouched = [p for p in _flat(before[uid]) if (uid, p) not in intended]
        assert {p: _flat(after).get(p) for p in untouched} == {
            p: _flat(before[uid])[p] for p in untouched
        }


def test_a_list_in_a_typed_column_is_refused_not_taken_for_its_element(env):
    # Regression: a boolean cell edited to [True] compared equal to True through
    # numpy's element-wise ==, so the edit was dropped without a word.
    srv, session, _ = env
    block = session.read_list(SERVICE, ["acceptTerms"], limit=2, progress=False)
    edited = block.copy()
    edited["acceptTerms"] = edited["acceptTerms"].astype(object)
    uid = edited.index[0]
    edited.at[uid, "acceptTerms"] = [bool(block.at[uid, "acceptTerms"])]
    assert len(session.diff(SERVICE, block, edited)) == 1
    updates = srv.stats["calls"]["CandidateService.update"]
    with pytest.raises(InvalidInput, match=r"acceptTerms.*expected true or false"):
        session.write_back(SERVICE, block, edited, progress=False)
    assert srv.stats["calls"]["CandidateService.update"] == updates


def test_a_path_under_uid_is_refused_by_normalize_what():
    # Regression: uid is added to every read, but "uid.x" was let through as a path
    # and only failed later, when the what dict was built.
    with pytest.raises(
        InvalidInput, match=r"'uid\.Person' is asked beside its parent 'uid'"
    ):
        query.normalize_what(["Person.firstName", "uid.Person"])
