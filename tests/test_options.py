"""Option lists in every shape the server uses, cached per language, mapped both ways."""

import pytest

from otyspd.errors import InvalidInput, ProtocolError
from otyspd.options import (
    get_options,
    labels_to_ids,
    map_labels,
    normalize_option_list,
    pick_lists,
)


class FakeSession:
    """Answers getOptionLists from a dict per language and counts the calls."""

    def __init__(self, answers):
        self.answers = answers
        self.language_code = None
        self._cache = {}
        self.calls = []

    def call(self, method, *params):
        self.calls.append((method, params))
        return self.answers[self.language_code]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"1": "New", "3": "Hired"}, {"1": "New", "3": "Hired"}),
        ([], {}),
        ({}, {}),
        (None, {}),
        (
            [{"uid": 486, "value": "class"}, {"uid": 463, "value": "email"}],
            {"486": "class", "463": "email"},
        ),
        ([{"id": "a", "label": "A"}], {"a": "A"}),
        ({"3": {"value": "Hired", "rank": 2}}, {"3": "Hired"}),
    ],
)
def test_option_list_shapes_normalise_to_id_label_maps(raw, expected):
    assert normalize_option_list(raw) == expected


def test_malformed_option_lists_are_protocol_errors():
    with pytest.raises(ProtocolError, match="no id"):
        normalize_option_list([{"value": "x"}])
    with pytest.raises(ProtocolError, match="unexpected shape"):
        normalize_option_list("x")


def test_a_list_keyed_differently_from_the_field_is_found():
    result = {"cmsLanguages": {"nl": "Nederlands", "en": "English"}, "statusId": []}
    lists = pick_lists(result, ["Person.languageCode", "statusId"])
    assert lists == {
        "Person.languageCode": {"nl": "Nederlands", "en": "English"},
        "statusId": {},
    }


def test_options_are_fetched_once_per_service_and_language():
    session = FakeSession(
        {None: {"statusId": {"1": "Nieuw"}}, "en": {"statusId": {"1": "New"}}}
    )
    assert get_options(session, "Candidate", ["statusId"]) == {
        "statusId": {"1": "Nieuw"}
    }
    assert get_options(session, "CandidateService", "statusId") == {
        "statusId": {"1": "Nieuw"}
    }
    assert len(session.calls) == 1
    assert session.calls[0] == ("CandidateService.getOptionLists", (["statusId"],))
    session.language_code = "en"
    assert get_options(session, "Candidate", ["statusId"]) == {"statusId": {"1": "New"}}
    assert len(session.calls) == 2
    with pytest.raises(InvalidInput, match="non-empty list"):
        get_options(session, "Candidate", [])


def test_labels_map_back_to_ids_and_bad_labels_are_detected():
    mapping = {"1": "New", "2": "Hired", "3": "Hired", "99": "99 (unknown id)"}
    assert map_labels(mapping, ["New", "99 (unknown id)", None], column="statusId") == {
        "New": "1",
        "99 (unknown id)": "99",
    }
    with pytest.raises(InvalidInput) as info:
        map_labels(mapping, ["Hired", "Gone"], column="statusId")
    assert any("several ids (2, 3)" in p for p in info.value.problems)
    assert any("'Gone' is not a label" in p for p in info.value.problems)


def test_labels_to_ids_uses_the_cached_list():
    session = FakeSession({None: {"statusId": {"1": "New", "2": "Hired"}}})
    assert labels_to_ids(session, "Candidate", "statusId", ["Hired"]) == {"Hired": "2"}
