"""Records become typed frames without losing a value, and back again."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otyspd.errors import InvalidInput
from otyspd.frames import (
    SchemaDriftError,
    cell_to_json,
    concat_frames,
    explode,
    flatten_record,
    nest_changes,
    records_to_frame,
    unflatten_record,
)
from otyspd.options import UnknownOptionWarning
from otyspd.schema import FieldDef


def test_frame_is_indexed_by_uid_strings_with_exactly_the_columns_asked():
    recs = [{"uid": 12, "b": "x", "a": 1, "extra": 5}, {"uid": "0013", "a": 2}]
    df = records_to_frame(recs, ["uid", "a", "b"])
    assert list(df.columns) == ["a", "b"]
    assert df.index.name == "uid"
    assert list(df.index) == ["12", "0013"]
    assert df.index.dtype == "string"


def test_explode_keeps_parents_whose_list_is_empty():
    recs = [
        {"uid": 101, "educations": []},
        {"uid": 102, "educations": [{"school": "School A", "year": 2015}]},
    ]
    df = records_to_frame(recs, ["uid", "educations"])
    assert df["educations"].dtype == object
    kids = explode(df, "educations")
    assert sorted(set(kids.index)) == ["101", "102"]
    assert kids.loc["101", "school"] is pd.NA and kids.loc["101", "year"] is pd.NA
    assert kids.loc["102", "school"] == "School A" and kids.loc["102", "year"] == 2015
    assert kids["year"].dtype == "Int64"
    assert kids.attrs["otyspd"]["empty_parents"] == ["101"]


def test_explode_when_every_list_is_empty_and_for_maps_keyed_by_id():
    df = records_to_frame([{"uid": 1, "e": []}, {"uid": 2}], ["uid", "e"])
    kids = explode(df, "e")
    assert list(kids.index) == ["1", "2"]
    df = records_to_frame(
        [{"uid": 1, "slug": {"1": "job-a", "3": "job-b"}}], ["uid", "slug"]
    )
    kids = explode(df, "slug")
    assert list(kids["key"]) == ["1", "3"] and list(kids["value"]) == ["job-a", "job-b"]
    with pytest.raises(InvalidInput, match="not a column"):
        explode(df, "nope")


def test_null_absent_and_empty_object_stay_apart_and_no_parent_column():
    recs = [
        {"uid": 1, "address": None},
        {"uid": 2, "address": {"city": "Utrecht"}},
        {"uid": 3},
        {"uid": 4, "address": {}},
        {"uid": 5, "address": []},
    ]
    df = records_to_frame(recs, ["uid", "address.city"])
    assert list(df.columns) == ["address.city"]
    assert df.loc["2", "address.city"] == "Utrecht"
    assert df["address.city"].isna().tolist() == [True, False, True, True, True]
    assert df.attrs["otyspd"]["absent"] == {"address.city": ["1", "3", "4", "5"]}

    scalar = records_to_frame([{"uid": 1}, {"uid": 2, "email": None}], ["uid", "email"])
    assert scalar.attrs["otyspd"]["absent"] == {"email": ["1"]}


def test_scalar_and_object_in_one_field_raise_naming_the_uids():
    recs = [
        {"uid": 1, "status": "active"},
        {"uid": 2, "status": {"id": 3, "label": "hired"}},
    ]
    with pytest.raises(SchemaDriftError, match=r"'status'.*uids 2") as info:
        records_to_frame(recs, ["uid", "status"])
    assert info.value.uids == ["2"]


def test_declared_shape_normalises_to_one_column():
    recs = [{"uid": 1, "status": 5}, {"uid": 2, "status": {"id": 3, "label": "hired"}}]
    df = records_to_frame(
        recs,
        ["uid", "status"],
        field_defs={"status": FieldDef("status", "integer", has_options=True)},
    )
    assert list(df.columns) == ["status"]
    assert df["status"].tolist() == [5, 3] and df["status"].dtype == "Int64"

    recs = [
        {"uid": 1, "skills": [{"id": 1}, {"id": 2}]},
        {"uid": 2, "skills": {"id": 7}},
    ]
    df = records_to_frame(recs, ["uid", "skills"], types={"skills": "collection"})
    assert list(df.columns) == ["skills"]
    assert df.loc["2", "skills"] == [{"id": 7}]


def test_labels_sent_instead_of_ids_are_recognised_with_the_option_list():
    recs = [
        {"uid": 1, "status": "hired"},
        {"uid": 2, "status": {"id": 3, "label": "hired"}},
        {"uid": 3, "status": 4},
    ]
    df = records_to_frame(
        recs,
        ["uid", "status"],
        types={"status": "integer"},
        option_labels={"status": {"3": "hired", "4": "new"}},
    )
    assert df["status"].tolist() == ["hired", "hired", "new"]


def test_integers_stay_exact_and_nullable():
    recs = [
        {"uid": 1, "owner_id": 17},
        {"uid": 2},
        {"uid": 3, "owner_id": 9007199254740993},
    ]
    df = records_to_frame(recs, ["uid", "owner_id"])
    assert df["owner_id"].dtype == "Int64"
    assert df.loc["3", "owner_id"] == 9007199254740993
    assert df.loc["2", "owner_id"] is pd.NA
    assert (
        json.dumps({"owner_id": cell_to_json(df.loc["1", "owner_id"])})
        == '{"owner_id": 17}'
    )


def test_integers_beyond_64_bits_are_kept_exactly():
    df = records_to_frame([{"uid": 1, "n": 2**70}, {"uid": 2, "n": 1}], ["uid", "n"])
    assert df.loc["1", "n"] == 2**70


def test_numeric_looking_strings_stay_strings():
    recs = [
        {
            "uid": "0012",
            "phone": "0612345678",
            "zip": "01234",
            "ref": "18_19",
            "big": "9007199254740993",
        }
    ]
    df = records_to_frame(recs, ["uid", "phone", "zip", "ref", "big"])
    assert df.index[0] == "0012"
    assert df.loc["0012"].tolist() == [
        "0612345678",
        "01234",
        "18_19",
        "9007199254740993",
    ]
    assert all(dtype == "string" for dtype in df.dtypes)


def test_dutch_dates_parse_day_first_with_an_explicit_format():
    recs = [
        {"uid": i, "d": d}
        for i, d in enumerate(["01-02-2024", "13-02-2024", "02-03-2024"])
    ]
    df = records_to_frame(recs, ["uid", "d"], types={"d": "date"})
    assert [t.date() for t in df["d"]] == [
        dt.date(2024, 2, 1),
        dt.date(2024, 2, 13),
        dt.date(2024, 3, 2),
    ]


def test_offsets_never_shift_the_calendar_date_of_a_date_field():
    recs = [
        {"uid": 1, "t": "2024-03-31T00:30:00+02:00"},
        {"uid": 2, "t": "2024-10-27T00:30:00+02:00"},
    ]
    dates = records_to_frame(recs, ["uid", "t"], types={"t": "date"})
    assert dates["t"].dtype == "datetime64[ns]"
    assert [t.date() for t in dates["t"]] == [
        dt.date(2024, 3, 31),
        dt.date(2024, 10, 27),
    ]
    plain = records_to_frame([{"uid": 1, "b": "1990-06-01"}], ["uid", "b"])
    assert plain["b"].dtype == "datetime64[ns]" and plain.loc["1", "b"] == pd.Timestamp(
        "1990-06-01"
    )


def test_datetimes_with_offsets_keep_their_instant_in_server_time():
    recs = [
        {"uid": 1, "t": "2024-10-27T00:30:00+02:00"},
        {"uid": 2, "t": "2024-07-01 09:00:00"},
    ]
    df = records_to_frame(recs, ["uid", "t"])
    assert str(df["t"].dtype) == "datetime64[ns, Europe/Amsterdam]"
    assert df.loc["1", "t"] == pd.Timestamp("2024-10-26T22:30:00Z")
    assert df.loc["1", "t"].date() == dt.date(2024, 10, 27)
    assert df.loc["2", "t"].utcoffset() == dt.timedelta(hours=2)


def test_server_datetimes_are_amsterdam_wall_time_and_zero_dates_are_recorded():
    recs = [
        {"uid": 1, "t": "2024-07-01 09:30:00", "d": "0000-00-00"},
        {"uid": 2, "t": "0000-00-00 00:00:00", "d": "2024-07-01"},
        {"uid": 3, "t": None, "d": ""},
    ]
    df = records_to_frame(recs, ["uid", "t", "d"])
    assert df.loc["1", "t"] == pd.Timestamp("2024-07-01 09:30", tz="Europe/Amsterdam")
    assert df["t"].isna().tolist() == [False, True, True]
    assert df.attrs["otyspd"]["zero_dates"] == {"t": ["2"], "d": ["1"]}
    assert df.attrs["otyspd"]["types"] == {"t": "datetime", "d": "date"}


def test_invalid_dates_in_a_date_column_raise_naming_the_uids():
    with pytest.raises(SchemaDriftError, match="uids 2"):
        records_to_frame(
            [{"uid": 1, "d": "2024-01-01"}, {"uid": 2, "d": "2024-02-30"}],
            ["uid", "d"],
            types={"d": "date"},
        )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, True),
        (1, True),
        ("1", True),
        ("true", True),
        (False, False),
        (0, False),
        ("0", False),
        (None, pd.NA),
    ],
)
def test_declared_booleans_read_every_spelling(raw, expected):
    df = records_to_frame([{"uid": 1, "b": raw}], ["uid", "b"], types={"b": "boolean"})
    assert df["b"].dtype == "boolean"
    assert df.loc["1", "b"] is expected or df.loc["1", "b"] == expected


def test_inferred_types_without_definitions():
    recs = [
        {"uid": 1, "i": 1, "f": 1.5, "b": True, "s": "x", "mix": 3, "coll": [1]},
        {
            "uid": 2,
            "i": None,
            "f": 2,
            "b": False,
            "s": None,
            "mix": "4",
            "coll": {"a": 1},
        },
    ]
    df = records_to_frame(recs, ["uid", "i", "f", "b", "s", "mix", "coll"])
    assert dict(df.dtypes.astype(str)) == {
        "i": "Int64",
        "f": "Float64",
        "b": "boolean",
        "s": "string",
        "mix": "string",
        "coll": "object",
    }
    assert df["mix"].tolist() == ["3", "4"]


def test_option_fields_become_labels_and_unknown_ids_stay_visible_with_a_warning():
    recs = [
        {"uid": 1, "statusId": 3},
        {"uid": 2, "statusId": "4"},
        {"uid": 3, "statusId": 99},
        {"uid": 4, "statusId": None},
    ]
    with pytest.warns(UnknownOptionWarning, match="99"):
        df = records_to_frame(
            recs,
            ["uid", "statusId"],
            option_labels={"statusId": {"3": "Hired", "4": "New"}},
        )
    assert isinstance(df["statusId"].dtype, pd.CategoricalDtype)
    assert df["statusId"].tolist()[:3] == ["Hired", "New", "99 (unknown id)"]
    assert df["statusId"].isna().tolist() == [False, False, False, True]
    assert df.attrs["otyspd"]["labels"]["statusId"] == {
        "3": "Hired",
        "4": "New",
        "99": "99 (unknown id)",
    }


def test_concat_frames_merges_attrs_and_categories():
    a = records_to_frame(
        [{"uid": 1, "s": 3, "d": "0000-00-00"}],
        ["uid", "s", "d"],
        option_labels={"s": {"3": "A"}},
    )
    with pytest.warns(UnknownOptionWarning):
        b = records_to_frame(
            [{"uid": 2, "s": 7}], ["uid", "s", "d"], option_labels={"s": {"3": "A"}}
        )
    both = concat_frames([a, b])
    assert both["s"].tolist() == ["A", "7 (unknown id)"]
    assert both.attrs["otyspd"]["absent"] == {"d": ["2"]}
    assert both.attrs["otyspd"]["zero_dates"] == {"d": ["1"]}
    assert both.attrs["otyspd"]["labels"]["s"] == {"3": "A", "7": "7 (unknown id)"}


def test_a_child_path_under_a_scalar_parent_raises():
    with pytest.raises(SchemaDriftError, match="uids 2"):
        records_to_frame(
            [{"uid": 1, "P": {"a": 1}}, {"uid": 2, "P": "x"}], ["uid", "P.a"]
        )


def test_records_without_uid_are_a_protocol_error():
    with pytest.raises(Exception, match="without a uid"):
        records_to_frame([{"a": 1}], ["uid", "a"])


def test_nest_changes_for_write_back():
    assert nest_changes(
        {"Person.firstName": "x", "Person.AddressPrimary.city": "Y", "statusId": 3}
    ) == {
        "Person": {"firstName": "x", "AddressPrimary": {"city": "Y"}},
        "statusId": 3,
    }
    with pytest.raises(InvalidInput, match="beside its parent"):
        nest_changes({"Person": {}, "Person.firstName": "x"})


def test_cell_to_json_gives_server_values():
    assert (
        cell_to_json(pd.NA) is None
        and cell_to_json(np.nan) is None
        and cell_to_json(pd.NaT) is None
    )
    assert cell_to_json(np.int64(3)) == 3
    assert cell_to_json(pd.Timestamp("2024-01-02"), "date") == "2024-01-02"
    ts = pd.Timestamp("2024-07-01 09:30", tz="Europe/Amsterdam")
    assert cell_to_json(ts, "datetime") == "2024-07-01 09:30:00"
    assert cell_to_json(ts.tz_convert("UTC"), "datetime") == "2024-07-01 09:30:00"


keys = st.sampled_from(["uid", "a", "Person", "firstName", "x_1", "Z"])
scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=4)
values = st.recursive(
    scalars | st.lists(scalars, max_size=2),
    lambda inner: st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
records = st.dictionaries(keys, values, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_flattening_then_unflattening_gives_the_record_back(record):
    assert unflatten_record(flatten_record(record)) == record
