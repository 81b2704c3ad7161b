"""Conditions, sort and field selections compile to the OWS shapes, or fail early."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from otyspd.errors import InvalidInput
from otyspd.query import (
    F,
    compile_condition,
    compile_sort,
    json_value,
    normalize_what,
    paths_from_what,
    what_from_paths,
)
from otyspd.schema import FieldDef


def cond(field, op, param=None):
    node = {"type": "COND", "field": field, "op": op}
    if op not in ("T", "F"):
        node["param"] = param
    return node


@pytest.mark.parametrize(
    ("expr", "op", "param"),
    [
        (F("statusId") == 3, "EQ", 3),
        (F("statusId") != 3, "NE", 3),
        (F("age") < 30, "LT", 30),
        (F("age") <= 30, "LE", 30),
        (F("age") > 30, "GT", 30),
        (F("age") >= 30, "GE", 30),
        (F("Person.emailPrimary").like("%@example.com"), "LIKE", "%@example.com"),
        (F("Person.emailPrimary").not_like("%x%"), "NLIKE", "%x%"),
    ],
)
def test_each_comparison_compiles_to_its_operator(expr, op, param):
    field = expr.field
    assert compile_condition(expr) == cond(field, op, param)


def test_boolean_tests_have_no_param():
    assert compile_condition(F("willRelocate").is_true()) == cond("willRelocate", "T")
    assert compile_condition(F("willRelocate").is_false()) == cond("willRelocate", "F")


def test_isin_sends_eq_with_a_list():
    assert compile_condition(F("statusId").isin([1, np.int64(2)])) == cond(
        "statusId", "EQ", [1, 2]
    )


def test_and_or_nest_and_flatten_same_kind_groups():
    tree = compile_condition(
        (F("a") == 1) & (F("b") == 2) & ((F("c") == 3) | (F("d") == 4))
    )
    assert tree == {
        "type": "AND",
        "items": [
            cond("a", "EQ", 1),
            cond("b", "EQ", 2),
            {"type": "OR", "items": [cond("c", "EQ", 3), cond("d", "EQ", 4)]},
        ],
    }


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (~(F("a") == 1), cond("a", "NE", 1)),
        (~(F("a") < 1), cond("a", "GE", 1)),
        (~(F("a") >= 1), cond("a", "LT", 1)),
        (~(F("a") > 1), cond("a", "LE", 1)),
        (~F("a").like("x%"), cond("a", "NLIKE", "x%")),
        (~F("a").is_true(), cond("a", "F")),
        (~~(F("a") == 1), cond("a", "EQ", 1)),
    ],
)
def test_negation_is_pushed_down_to_the_operator(expr, expected):
    assert compile_condition(expr) == expected


def test_negating_a_group_applies_de_morgan():
    tree = compile_condition(~((F("a") == 1) & (F("b") > 2)))
    assert tree == {"type": "OR", "items": [cond("a", "NE", 1), cond("b", "LE", 2)]}


def test_negating_isin_gives_an_and_of_not_equals():
    tree = compile_condition(~F("statusId").isin([1, 2]))
    assert tree == {
        "type": "AND",
        "items": [cond("statusId", "NE", 1), cond("statusId", "NE", 2)],
    }


def test_shorthand_dict_is_an_and_of_equalities():
    assert compile_condition({"statusId": 3, "userId": [1, 2]}) == {
        "type": "AND",
        "items": [cond("statusId", "EQ", 3), cond("userId", "EQ", [1, 2])],
    }
    assert compile_condition({"statusId": 3}) == cond("statusId", "EQ", 3)
    assert compile_condition(None) is None


def test_raw_ows_dicts_are_validated_and_kept():
    raw = {
        "type": "AND",
        "items": [cond("a", "EQ", "x"), {"type": "OR", "items": [cond("b", "T")]}],
    }
    assert compile_condition(raw) == raw


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (
            {"type": "COND", "field": "a", "op": "BETWEEN", "param": 1},
            "unknown operator",
        ),
        ({"type": "COND", "field": 3, "op": "EQ", "param": 1}, "'field' must be"),
        ({"type": "COND", "field": "a", "op": "EQ"}, "needs a 'param'"),
        ({"type": "AND", "items": []}, "non-empty 'items'"),
        (
            {"type": "COND", "field": "a", "op": "LIKE", "param": 5},
            "pattern must be a string",
        ),
        (
            {"type": "COND", "field": "a", "op": "EQ", "param": object()},
            "cannot be sent",
        ),
        ("statusId = 3", "a condition must be built"),
    ],
)
def test_bad_raw_conditions_are_rejected(bad, match):
    with pytest.raises(InvalidInput, match=match):
        compile_condition(bad)


def test_bad_python_conditions_are_rejected_before_sending():
    with pytest.raises(InvalidInput, match="isin"):
        F("a").isin([])
    with pytest.raises(InvalidInput, match="only be compared with a value"):
        F("a") == F("b")  # noqa: B015
    with pytest.raises(InvalidInput, match="field path"):
        F(3)
    with pytest.raises(InvalidInput, match="cannot be sent"):
        F("a") == object()  # noqa: B015
    with pytest.raises(InvalidInput, match="no truth value"):
        bool(F("a") == 1)
    with pytest.raises(InvalidInput, match="pattern must be a string"):
        F("a").like(3)
    with pytest.raises(InvalidInput, match="isin"):
        F("a") == [1, 2]  # noqa: B015
    with pytest.raises(InvalidInput, match="is a field"):
        compile_condition(F("a"))


def test_values_are_made_json_safe():
    assert json_value(np.int64(5)) == 5 and type(json_value(np.int64(5))) is int
    assert json_value(np.float64(1.5)) == 1.5
    assert json_value(dt.date(2024, 3, 1)) == "2024-03-01"
    aware = dt.datetime(2024, 8, 1, 0, 0, tzinfo=dt.timezone.utc)
    assert json_value(aware) == "2024-08-01T00:00:00.000Z"
    # a naive datetime is Amsterdam wall time: summer midnight is 22:00 UTC the day before
    assert json_value(dt.datetime(2025, 8, 1)) == "2025-07-31T22:00:00.000Z"
    assert (
        json_value(pd.Timestamp("2025-01-01", tz="Europe/Amsterdam"))
        == "2024-12-31T23:00:00.000Z"
    )
    with pytest.raises(InvalidInput, match="not a number"):
        json_value(float("nan"))


def test_sort_lists_and_dicts_get_uid_appended():
    assert compile_sort(["-entryDateTime", "Person.lastName"]) == {
        "entryDateTime": "DESC",
        "Person.lastName": "ASC",
        "uid": "ASC",
    }
    assert compile_sort({"uid": "DESC"}) == {"uid": "DESC"}
    assert compile_sort(None) == {"uid": "ASC"}
    with pytest.raises(InvalidInput, match="ASC"):
        compile_sort({"a": "UP"})
    with pytest.raises(InvalidInput, match="twice"):
        compile_sort(["a", "-a"])
    with pytest.raises(InvalidInput, match="field name string"):
        compile_sort([1])


def test_what_converts_both_ways():
    what = {
        "uid": 1,
        "Person": {"firstName": 1, "lastName": True, "age": 0},
        "statusId": 1,
    }
    paths = paths_from_what(what)
    assert paths == ["uid", "Person.firstName", "Person.lastName", "statusId"]
    assert what_from_paths(paths) == {
        "uid": 1,
        "Person": {"firstName": 1, "lastName": 1},
        "statusId": 1,
    }


def test_uid_is_always_asked_first():
    assert normalize_what(["statusId", "Person.firstName"]) == [
        "uid",
        "statusId",
        "Person.firstName",
    ]
    assert normalize_what(["statusId", "uid"]) == ["uid", "statusId"]
    assert normalize_what({"Person": {"firstName": 1}}) == ["uid", "Person.firstName"]


@pytest.mark.parametrize(
    ("what", "match"),
    [
        (["Person", "Person.firstName"], "beside its parent 'Person'"),
        (["a", "a"], "asked twice"),
        ([3], "field path"),
        (["a..b"], "empty part"),
        ([], "no fields"),
        ({"a": 2}, "must be 1, 0"),
        (42, "list of dotted paths"),
    ],
)
def test_bad_what_is_rejected(what, match):
    with pytest.raises(InvalidInput, match=match):
        normalize_what(what)


DEFS = {
    "uid": FieldDef("uid"),
    "statusId": FieldDef("statusId", "integer", has_options=True),
    "Person.firstName": FieldDef("Person.firstName"),
    "notes": FieldDef(
        "notes", "text", listable=False, filterable=False, sortable=False
    ),
}


def test_field_definitions_reject_unknown_and_unusable_fields_early():
    with pytest.raises(InvalidInput, match="not a field of this service"):
        normalize_what(["uid", "statusid"], DEFS)
    with pytest.raises(InvalidInput, match="did you mean 'statusId'"):
        normalize_what(["statusid"], DEFS)
    with pytest.raises(InvalidInput, match="not listable"):
        normalize_what(["notes"], DEFS)
    with pytest.raises(InvalidInput, match="not filterable"):
        compile_condition(F("notes") == "x", DEFS)
    with pytest.raises(InvalidInput, match="not sortable"):
        compile_sort(["notes"], DEFS)
    assert normalize_what(["Person.firstName"], DEFS) == ["uid", "Person.firstName"]
    assert compile_condition(F("statusId") == 3, DEFS)["op"] == "EQ"


def test_where_syntax_of_the_command_line():
    from otyspd.query import parse_where

    tree = parse_where(
        "statusId=3,Person.emailPrimary~%@example.com,entryDateTime>=2024-01-01"
    )
    assert tree.to_ows() == {
        "type": "AND",
        "items": [
            cond("statusId", "EQ", 3),
            cond("Person.emailPrimary", "LIKE", "%@example.com"),
            cond("entryDateTime", "GE", "2024-01-01"),
        ],
    }
    assert parse_where("zip=0123").to_ows() == cond("zip", "EQ", "0123")
    assert parse_where("name='a,b'").to_ows() == cond("name", "EQ", "a,b")
    assert parse_where("statusId=1|2").to_ows() == cond("statusId", "EQ", [1, 2])
    assert parse_where("statusId!=1|2").to_ows()["type"] == "AND"
    assert parse_where("willRelocate=true").to_ows() == cond("willRelocate", "T")
    assert parse_where("a!~x%").to_ows() == cond("a", "NLIKE", "x%")
    assert parse_where("n<=-5").to_ows() == cond("n", "LE", -5)
    assert parse_where("") is None


@pytest.mark.parametrize(
    ("text", "field", "op", "param"),
    [
        ("note~%a=b%", "note", "LIKE", "%a=b%"),
        ("note!~x<y", "note", "NLIKE", "x<y"),
        ("title=a~b", "title", "EQ", "a~b"),
        ("entryDateTime>=2024-01-01", "entryDateTime", "GE", "2024-01-01"),
    ],
)
def test_where_splits_on_the_first_operator_so_values_may_hold_operators(
    text, field, op, param
):
    from otyspd.query import parse_where

    assert parse_where(text).to_ows() == {
        "type": "COND",
        "field": field,
        "op": op,
        "param": param,
    }
    for bad in ("statusId", "a=1,,b=2", "a='x"):
        with pytest.raises(InvalidInput, match="--where"):
            parse_where(bad)
