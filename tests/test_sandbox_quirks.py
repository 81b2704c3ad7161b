"""The server habits the sandbox reproduces, and the rules it enforces."""

from __future__ import annotations

import json
import re
import socket

import pytest
import requests

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def _first_candidate(ows) -> str:
    return ows.result("CandidateService.getList", {"what": {"uid": 1}, "limit": 1})[0][
        "uid"
    ]


def _error(answer: dict) -> str:
    assert "result" not in answer, answer
    return answer["error"]["message"]


# ---- envelope and sessions -----------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "abcdefghijklmnopqrstuvwxyz", 42])
def test_unknown_or_absent_token_is_an_http_200_login_first_error(ows, token):
    response = ows.post(
        {
            "jsonrpc": "2.0",
            "method": "CandidateService.getList",
            "params": [token, {}],
            "id": 7,
        }
    )
    assert response.status_code == 200
    assert response.json() == {
        "error": {"message": "Access denied; please login first", "code": 0},
        "id": 7,
    }


def test_expired_token_gets_login_again_and_echoes_the_id(ows):
    ows.srv.configure(expire_after_calls=0)
    answer = ows.call("check", ows.token, id="abc")
    assert answer == {
        "error": {"message": "Access denied; please login again", "code": 0},
        "id": "abc",
    }


def test_a_body_that_is_not_json_gets_a_parse_error_in_http_200(ows):
    response = ows.http.post(ows.srv.url, data=b"{not json", timeout=30)
    assert response.status_code == 200
    assert response.json()["error"]["code"] == -32700


@pytest.mark.parametrize(
    "body",
    [
        # a lone surrogate, escaped: valid JSON syntax, but no UTF-8 text
        b'{"jsonrpc":"2.0","method":"CandidateService.update",'
        b'"params":["t","1",{"title":"a\\ud800b"}],"id":3}',
        b'{"jsonrpc":"2.0","method":"check","params":["\xff\xfe"],"id":4}',
    ],
    ids=["escaped-lone-surrogate", "bytes-not-utf8"],
)
def test_a_body_that_is_not_utf8_gets_a_parse_error_in_http_200(ows, body):
    calls = dict(ows.srv.stats["calls"])
    response = ows.http.post(ows.srv.url, data=body, timeout=30)
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["code"] == -32700
    assert "Parse error" in error["message"] and "UTF-8" in error["message"]
    assert ows.srv.stats["calls"] == calls


def test_unknown_method_error_names_the_method(ows):
    message = _error(ows.call("Otys.Services.CandidateService.explode", ows.token))
    assert (
        "Otys.Services.CandidateService.explode" in message and "simulated" in message
    )


def test_params_sent_as_an_object_are_taken_in_order(ows):
    body = {
        "jsonrpc": "2.0",
        "method": "CandidateService.getList",
        "params": {"0": ows.token, "what": {"uid": 1}},
        "id": 1,
    }
    rows = ows.post(body).json()["result"]
    assert rows and set(rows[0]) == {"uid"}


# ---- shapes and types ----------------------------------------------------------------


def test_get_list_returns_a_bare_list(ows):
    result = ows.result(
        "RelationService.getList", {"what": {"uid": 1, "relation": 1}, "limit": 3}
    )
    assert isinstance(result, list) and len(result) == 3


def test_total_count_is_an_integer_only_when_asked(ows):
    asked = ows.result(
        "CandidateService.getListEx", {"limit": 1, "getTotalCount": True}
    )
    assert type(asked["totalCount"]) is int and asked["totalCount"] == len(
        ows.srv.store.all('SELECT 1 FROM "CandidateService"')
    )
    assert ows.result("CandidateService.getListEx", {"limit": 1})["totalCount"] is None


def test_empty_collections_and_maps_come_back_as_empty_arrays(ows):
    uid = _first_candidate(ows)
    ows.srv.edit(
        "CandidateService", uid, {"matchCriteria_1": [], "Person": {"PhoneNumbers": []}}
    )
    got = ows.result(
        "CandidateService.getDetail",
        uid,
        {"matchCriteria_1": 1, "mergeHistory": 1, "Person": {"PhoneNumbers": 1}},
    )
    assert got == {
        "matchCriteria_1": [],
        "mergeHistory": [],
        "Person": {"PhoneNumbers": []},
    }
    ows.srv.edit("CandidateService", uid, {"matchCriteria_1": {"101": 1, "103": 1}})
    assert ows.result("CandidateService.getDetail", uid, {"matchCriteria_1": 1})[
        "matchCriteria_1"
    ] == {
        "101": "Bouw",
        "103": "Overheid",
    }


def test_uids_are_strings_internal_ids_integers_and_user_uids_integers(ows):
    row = ows.result(
        "CandidateService.getList",
        {"what": {"uid": 1, "internalId": 1, "userId": 1}, "limit": 1},
    )[0]
    assert (
        isinstance(row["uid"], str)
        and type(row["internalId"]) is int
        and type(row["userId"]) is int
    )
    user = ows.result(
        "UserService.getList", {"what": {"uid": 1, "username": 1}, "limit": 1}
    )[0]
    assert type(user["uid"]) is int
    assert ows.result("UserService.getDetail", str(user["uid"]), {"username": 1}) == {
        "username": user["username"]
    }


def test_datetimes_are_amsterdam_wall_clock_and_accept_iso_utc(ows):
    uid = _first_candidate(ows)
    ows.result(
        "CandidateService.update", uid, {"acceptTermsTs": "2025-07-31T22:00:00.000Z"}
    )
    got = ows.result(
        "CandidateService.getDetail",
        uid,
        {"acceptTermsTs": 1, "entryDateTime": 1, "lastModified": 1},
    )
    assert got["acceptTermsTs"] == "2025-08-01 00:00:00"  # CEST is UTC+2
    ows.result("CandidateService.update", uid, {"acceptTermsTs": "2025-01-15 09:30:00"})
    assert (
        ows.result("CandidateService.getDetail", uid, {"acceptTermsTs": 1})[
            "acceptTermsTs"
        ]
        == "2025-01-15 09:30:00"
    )
    assert DATETIME.match(got["entryDateTime"]) and DATETIME.match(got["lastModified"])


def test_some_empty_dates_come_as_mysql_zero_dates(ows):
    uid = _first_candidate(ows)
    ows.result(
        "CandidateService.update",
        uid,
        {"availableAt": None, "acceptTermsTs": None, "Person": {"birthdate": None}},
    )
    got = ows.result(
        "CandidateService.getDetail",
        uid,
        {"availableAt": 1, "acceptTermsTs": 1, "Person": {"birthdate": 1}},
    )
    assert got == {
        "availableAt": "0000-00-00",
        "acceptTermsTs": "0000-00-00 00:00:00",
        "Person": {"birthdate": None},
    }
    # A zero date written back means "empty" again.
    ows.result("CandidateService.update", uid, {"availableAt": "0000-00-00"})
    assert ows.srv.get("CandidateService", uid)["availableAt"] == "0000-00-00"


def test_some_booleans_come_as_php_strings_or_integers(ows):
    uid = _first_candidate(ows)
    ows.result(
        "CandidateService.update",
        uid,
        {"ownsCar": True, "willRelocate": "0", "handicapped": 1},
    )
    got = ows.result(
        "CandidateService.getDetail",
        uid,
        {"ownsCar": 1, "willRelocate": 1, "handicapped": 1},
    )
    assert got == {"ownsCar": "1", "willRelocate": 0, "handicapped": True}
    user = ows.result("UserService.getList", {"what": {"blocked": 1}, "limit": 1})[0]
    assert user["blocked"] in ("0", "1")


def test_option_lists_use_string_ids_and_their_special_keys(ows):
    langs = ows.result("CandidateService.getOptionLists", ["Person.languageCode"])
    assert (
        list(langs) == ["cmsLanguages"] and langs["cmsLanguages"]["nl"] == "Nederlands"
    )
    sites = ows.result("VacancyService.getOptionLists", ["publishedWebsites"])
    assert list(sites) == ["publishedWebsites"]
    assert (
        all(k.isdigit() for k in sites["publishedWebsites"])
        and "1" in sites["publishedWebsites"]
    )
    message = _error(
        ows.call("CandidateService.getOptionLists", ows.token, ["Person.firstName"])
    )
    assert "Person.firstName" in message


def test_vacancy_maps_are_keyed_by_site_id(ows):
    rows = ows.result(
        "VacancyService.getList",
        {"what": {"slug": 1, "publishedWebsites": 1}, "limit": 50},
    )
    assert all("1" in r["slug"] for r in rows)
    published = [r["publishedWebsites"] for r in rows if r["publishedWebsites"]]
    assert published and all(set(p) <= {"1", "2", "3"} for p in published)


def test_multiservice_mirrors_an_array_and_an_object(ows):
    uid = _first_candidate(ows)
    good = {
        "method": "Otys.Services.CandidateService.getDetail",
        "args": [ows.token, uid, {"uid": 1}],
    }
    bad = {
        "method": "Otys.Services.CandidateService.getDetail",
        "args": [ows.token, "missing", {"uid": 1}],
    }
    denied = {
        "method": "Otys.Services.CandidateService.getDetail",
        "args": ["nope", uid, {"uid": 1}],
    }

    as_list = ows.call("MultiService.execute", [good, bad, denied])["result"]
    assert [r["status"] for r in as_list] == ["success", "error", "error"]
    assert as_list[0] == {"status": "success", "data": {"uid": uid}}
    assert as_list[1]["message"].startswith("Record not found") and "code" in as_list[1]
    assert as_list[2]["message"] == "Access denied; please login first"

    as_map = ows.call("MultiService.execute", {"gdpr": good, "other": bad})["result"]
    assert list(as_map) == ["gdpr", "other"] and as_map["gdpr"]["data"] == {"uid": uid}


def test_multiservice_can_write_and_wrap(ows):
    uid = _first_candidate(ows)
    vacancy = ows.srv.store.one(
        'SELECT uid, "title#de" FROM "VacancyService" WHERE "title#de" IS NOT NULL LIMIT 1'
    )
    inner = {
        "jsonrpc": "2.0",
        "method": "VacancyService.getDetail",
        "params": [ows.token, vacancy[0], {"title": 1}],
        "id": 1,
    }
    calls = [
        {
            "method": "Otys.Services.CandidateService.update",
            "args": [ows.token, uid, {"personalNr": "A-17"}],
        },
        {"method": "Otys.Services.LanguageService.wrapRequest", "args": ["de", inner]},
    ]
    result = ows.call("MultiService.execute", calls)["result"]
    assert result[1] == {"status": "success", "data": {"title": vacancy[1]}}
    assert ows.srv.get("CandidateService", uid)["personalNr"] == "A-17"


# ---- languages -----------------------------------------------------------------------


def test_option_labels_follow_the_content_language(ows):
    assert (
        ows.result("VacancyService.getOptionLists", ["categoryId"])["categoryId"]["10"]
        == "ICT"
    )
    ows.result("VacancyService.setLanguage", "en")
    assert (
        ows.result("VacancyService.getOptionLists", ["categoryId"])["categoryId"]["10"]
        == "IT"
    )
    # Another service sees the same session language.
    assert (
        ows.result("CandidateService.getOptionLists", ["statusId"])["statusId"]["1"]
        == "New"
    )


def test_the_language_is_per_session(ows):
    other = requests.Session()
    token = other.post(
        ows.srv.url, json={"method": "loginByUid", "params": [ows.srv.api_key], "id": 1}
    ).json()["result"]
    ows.result("CandidateService.setLanguage", "de")
    body = {
        "method": "CandidateService.getOptionLists",
        "params": [token, ["statusId"]],
        "id": 1,
    }
    labels = other.post(ows.srv.url, json=body).json()["result"]["statusId"]
    other.close()
    assert labels["1"] == "Nieuw"
    assert (
        ows.result("CandidateService.getOptionLists", ["statusId"])["statusId"]["1"]
        == "Neu"
    )


@pytest.mark.parametrize("code", ["xx", "NL", "", None, "en-GB"])
def test_unsupported_languages_are_refused(ows, code):
    assert "language" in _error(
        ows.call("CandidateService.setLanguage", ows.token, code)
    )
    inner = {"method": "check", "params": [ows.token], "id": 1}
    assert "language" in _error(ows.call("LanguageService.wrapRequest", code, inner))


def test_a_missing_translation_reads_as_null(ows):
    uid = ows.srv.store.one(
        'SELECT uid FROM "VacancyService" WHERE "title#fr" IS NULL LIMIT 1'
    )[0]
    inner = {
        "method": "VacancyService.getDetail",
        "params": [ows.token, uid, {"title": 1}],
        "id": 1,
    }
    assert ows.call("LanguageService.wrapRequest", "fr", inner)["result"] == {
        "title": None
    }


def test_writing_a_multilingual_field_writes_the_current_language(ows):
    uid = ows.srv.store.one('SELECT uid FROM "VacancyService" LIMIT 1')[0]
    inner = {
        "method": "VacancyService.update",
        "params": [ows.token, uid, {"title": "Cook (m/f)"}],
        "id": 1,
    }
    ows.call("LanguageService.wrapRequest", "en", inner)
    nl, en = ows.srv.store.one(
        'SELECT "title#nl", "title#en" FROM "VacancyService" WHERE uid = ?', (uid,)
    )
    assert en == "Cook (m/f)" and nl != en


# ---- paging --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "rows"),
    [
        ({"limit": 500}, 200),
        ({}, 200),
        ({"limit": 500, "excludeLimitCheck": True}, 300),
        ({"limit": 5000, "excludeLimitCheck": 1}, 300),
        ({"limit": 0}, 0),
        ({"limit": 10, "offset": 295}, 5),
    ],
)
def test_the_page_cap_and_exclude_limit_check(ows, args, rows):
    page = ows.result("CandidateService.getListEx", {"what": {"uid": 1}, **args})
    assert len(page["listOutput"]) == rows


def test_exclude_limit_check_is_capped_at_1000(make_sandbox):
    from conftest import RawOws

    client = RawOws(make_sandbox(records=1200))
    client.login()
    page = client.result(
        "CandidateService.getList",
        {"what": {"uid": 1}, "limit": 5000, "excludeLimitCheck": True},
    )
    client.close()
    assert len(page) == 1000


def test_default_order_is_internal_id_and_unknown_keys_are_ignored(ows):
    rows = ows.result(
        "CandidateService.getList",
        {"what": {"internalId": 1}, "limit": 50, "totalCount": 1, "search": None},
    )
    ids = [r["internalId"] for r in rows]
    assert ids == sorted(ids)


def test_sort_on_several_fields_and_the_order_alias(ows):
    args = {"what": {"statusId": 1, "entryDateTime": 1}, "limit": 200}
    by_sort = ows.result(
        "CandidateService.getList",
        {**args, "sort": {"statusId": "DESC", "entryDateTime": "asc"}},
    )
    by_order = ows.result(
        "CandidateService.getList",
        {**args, "order": {"statusId": "DESC", "entryDateTime": "ASC"}},
    )
    assert by_sort == by_order
    keys = [(-r["statusId"], r["entryDateTime"]) for r in by_sort]
    assert keys == sorted(keys)


# ---- conditions ----------------------------------------------------------------------


def _uids(ows, condition, service="CandidateService") -> set:
    rows = ows.result(
        f"{service}.getList",
        {
            "what": {"uid": 1},
            "condition": condition,
            "limit": 1000,
            "excludeLimitCheck": 1,
        },
    )
    return {r["uid"] for r in rows}


def _where(ows, sql, params=(), table="CandidateService") -> set:
    return {
        r[0]
        for r in ows.srv.store.all(f'SELECT uid FROM "{table}" WHERE {sql}', params)
    }


def _cond(field, op, param=None) -> dict:
    return {"type": "COND", "field": field, "op": op, "param": param}


def test_like_is_case_insensitive_with_percent_and_underscore(ows):
    got = _uids(ows, _cond("Person.emailPrimary", "LIKE", "%@EXAMPLE.NL%"))
    assert got == _where(ows, "lower(\"Person.emailPrimary\") LIKE '%@example.nl%'")
    assert got
    one_char = _uids(ows, _cond("Person.lastName", "LIKE", "B_kker"))
    assert one_char == _where(ows, "lower(\"Person.lastName\") = 'bakker'")


def test_like_folds_accented_letters_too(ows):
    got = _uids(ows, _cond("Person.lastName", "LIKE", "%özil%"))
    assert got and got == _uids(ows, _cond("Person.lastName", "LIKE", "%ÖZIL%"))


def test_nlike_and_ne_exclude(ows):
    everyone = _where(ows, "1")
    liked = _uids(ows, _cond("Person.lastName", "LIKE", "%a%"))
    assert _uids(ows, _cond("Person.lastName", "NLIKE", "%a%")) == everyone - liked
    three = _uids(ows, _cond("statusId", "EQ", 3))
    assert _uids(ows, _cond("statusId", "NE", "3")) == everyone - three


def test_gt_empty_string_means_not_empty(ows):
    got = _uids(ows, _cond("personalNr", "GT", ""))
    assert got == _where(ows, '"personalNr" IS NOT NULL AND "personalNr" <> \'\'')
    assert _uids(ows, _cond("personalNr", "EQ", "")) == _where(
        ows, '"personalNr" IS NULL'
    )


def test_list_params_mean_any_of(ows):
    assert _uids(ows, _cond("statusId", "EQ", [1, "2"])) == _where(
        ows, '"statusId" IN (1, 2)'
    )
    assert _uids(ows, _cond("matchCriteria_1", "EQ", [101])) == _where(
        ows, 'EXISTS (SELECT 1 FROM json_each("matchCriteria_1") WHERE value = 101)'
    )


def test_datetime_params_in_iso_utc_and_local_time_agree(ows):
    iso = _uids(ows, _cond("entryDateTime", "GE", "2020-06-30T22:00:00.000Z"))
    local = _uids(ows, _cond("entryDateTime", "GE", "2020-07-01 00:00:00"))
    assert iso == local and iso
    cutoff = 1593554400  # 2020-07-01 00:00 in Amsterdam
    assert iso == _where(ows, '"entryDateTime" >= ?', (cutoff,))


def test_date_fields_take_iso_instants_as_amsterdam_dates(ows):
    got = _uids(ows, _cond("availableAt", "LT", "2024-06-30T22:00:00.000Z"))
    assert got == _where(ows, "\"availableAt\" < '2024-07-01'")


def test_true_and_false_operators_and_nested_groups(ows):
    condition = {
        "type": "OR",
        "items": [
            {
                "type": "AND",
                "items": [_cond("acceptTerms", "T"), _cond("statusId", "EQ", 1)],
            },
            _cond("acceptTerms", "F"),
        ],
    }
    assert _uids(ows, condition) == _where(
        ows, '("acceptTerms" = 1 AND "statusId" = 1) OR "acceptTerms" = 0'
    )


def test_a_condition_on_a_vacancy_title_uses_the_content_language(ows):
    english = _uids(ows, _cond("title", "LIKE", "%driver%"), "VacancyService")
    assert not english
    ows.result("VacancyService.setLanguage", "en")
    english = _uids(ows, _cond("title", "LIKE", "%driver%"), "VacancyService")
    assert english == _where(
        ows, "\"title#en\" LIKE '%driver%'", table="VacancyService"
    )


# ---- enforcement ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "args", "named"),
    [
        ("getList", {"what": {"Person": {"nickname": 1}}}, "Person.nickname"),
        ("getList", {"what": {"remarks": 1}}, "remarks"),
        ("getList", {"condition": _cond("shoeSize", "EQ", 1)}, "shoeSize"),
        ("getList", {"condition": _cond("remarks", "LIKE", "%")}, "remarks"),
        ("getList", {"condition": _cond("statusId", "ABOUT", 1)}, "ABOUT"),
        ("getList", {"condition": _cond("statusId", "EQ", "three")}, "statusId"),
        (
            "getList",
            {"condition": _cond("entryDateTime", "GE", "31-12-2024")},
            "entryDateTime",
        ),
        ("getList", {"condition": _cond("statusId", "T")}, "statusId"),
        ("getList", {"condition": {"type": "XOR", "items": []}}, "XOR"),
        ("getList", {"sort": {"age": "ASC"}}, "age"),
        ("getList", {"sort": {"statusId": "UP"}}, "statusId"),
        ("getList", {"limit": -1}, "limit"),
    ],
)
def test_bad_list_arguments_are_refused_naming_the_culprit(ows, method, args, named):
    message = _error(ows.call(f"CandidateService.{method}", ows.token, args))
    assert named in message and "simulated" in message


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"internalId": 5}, "internalId"),
        ({"age": 30}, "age"),
        ({"mergeHistory": []}, "mergeHistory"),
        ({"statusId": 99}, "statusId"),
        ({"statusId": "actief"}, "statusId"),
        ({"userId": 999}, "userId"),
        ({"ownsCar": "maybe"}, "ownsCar"),
        ({"Person": {"birthdate": "31-12-1990"}}, "Person.birthdate"),
        ({"Person": {"lastName": ""}}, "Person.lastName"),
        ({"Person": {"firstName": ["Jan"]}}, "Person.firstName"),
        ({"Person": {"gender": "x"}}, "Person.gender"),
        ({"matchCriteria_1": {"999": 1}}, "matchCriteria_1"),
        (
            {"Person": {"PhoneNumbers": [{"type": "pager", "phoneNumber": "1"}]}},
            "pager",
        ),
        ({"favouriteColour": "blue"}, "favouriteColour"),
    ],
)
def test_bad_updates_are_refused_naming_the_field_and_write_nothing(ows, fields, named):
    uid = _first_candidate(ows)
    before = ows.srv.get("CandidateService", uid)
    payload = {"personalNr": "CHANGED", **fields}
    message = _error(ows.call("CandidateService.update", ows.token, uid, payload))
    assert named in message
    assert ows.srv.get("CandidateService", uid) == before


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"Person": {"firstName": "Zonder"}}, "Person.lastName"),
        ({"Person": {"lastName": "X"}, "uid": "abc"}, "uid"),
        (
            {"Person": {"lastName": "X"}, "lastModified": "2024-01-01 00:00:00"},
            "lastModified",
        ),
    ],
)
def test_bad_adds_are_refused_naming_the_field(ows, fields, named):
    count = len(ows.srv.store.all('SELECT 1 FROM "CandidateService"'))
    assert named in _error(ows.call("CandidateService.add", ows.token, fields))
    assert len(ows.srv.store.all('SELECT 1 FROM "CandidateService"')) == count


def test_add_makes_the_api_user_owner_and_procedure_refs_must_exist(ows):
    uid = ows.result("CandidateService.add", {"Person": {"lastName": "Eigenaar"}})
    assert ows.srv.get("CandidateService", uid)["userId"] == 1
    vacancy = ows.srv.store.one('SELECT uid FROM "VacancyService" LIMIT 1')[0]
    message = _error(
        ows.call(
            "ProcedureService.add",
            ows.token,
            {"candidateUid": "nope", "vacancyUid": vacancy},
        )
    )
    assert "candidateUid" in message
    procedure = ows.result(
        "ProcedureService.add",
        {
            "candidateUid": uid,
            "vacancyUid": vacancy,
            "ProcedureStatus1": {"uid": "1_2"},
        },
    )
    assert ows.srv.get("ProcedureService", procedure)["ProcedureStatus1"] == {
        "uid": 2,
        "status": "Eerste gesprek",
    }


def test_phone_numbers_take_a_list_or_a_map_of_edits(ows):
    uid = _first_candidate(ows)
    phones = [
        {"type": "mobile", "phoneNumber": "0612345678"},
        {"type": "work", "phoneNumber": "(020) 123 4567"},
    ]
    ows.result("CandidateService.update", uid, {"Person": {"PhoneNumbers": phones}})
    edit = {
        "2": {"type": "work", "phoneNumber": "020-1234567"},
        "ADD": [{"type": "fax", "phoneNumber": "1"}],
        "DELETE": [1],
    }
    ows.result("CandidateService.update", uid, {"Person": {"PhoneNumbers": edit}})
    assert ows.srv.get("CandidateService", uid)["Person"]["PhoneNumbers"] == [
        {"type": "work", "phoneNumber": "020-1234567"},
        {"type": "fax", "phoneNumber": "1"},
    ]


def test_get_detail_of_a_missing_record_is_a_not_found_error(ows):
    answer = ows.call(
        "VacancyService.getDetail", ows.token, "0000000000000000", {"uid": 1}
    )
    assert answer["error"]["code"] == 404 and answer["error"]["message"].startswith(
        "Record not found"
    )


# ---- duplicates, portal, files -------------------------------------------------------


def test_duplicate_info_prefers_internal_id_over_personal_nr(ows):
    # The seed gives the second merged candidate the first one's internalId as its personalNr.
    first, second = ows.srv.store.all(
        "SELECT src_id, src_uid, src_nr FROM merges ORDER BY src_id LIMIT 2"
    )
    assert second[2] == str(first[0])
    info = ows.result("CandidateService.retrieveDuplicateInfo", str(first[0]))
    assert str(first[0]) in info["mergeHistory"]
    # A personalNr is found when no uid or internalId matches.
    third = ows.srv.store.one(
        "SELECT src_id, src_uid FROM merges ORDER BY src_id LIMIT 1 OFFSET 2"
    )
    ows.srv.store.execute(
        "UPDATE merges SET src_nr = 'PN-777' WHERE src_id = ?", (third[0],)
    )
    by_nr = ows.result("CandidateService.retrieveDuplicateInfo", "PN-777")
    assert next(iter(by_nr["mergeHistory"].values()))["oidSource"] == third[1]


def test_duplicate_info_of_an_unknown_identifier_is_not_found(ows):
    assert "Record not found" in _error(
        ows.call(
            "CandidateService.retrieveDuplicateInfo", ows.token, "no-such-candidate"
        )
    )


@pytest.mark.parametrize(
    "args",
    [
        ["", {"url": "https://portal.example.nl/x"}, 7],
        ["w1", {"link": "https://portal.example.nl/x"}, 7],
        ["w1", {"url": "javascript:alert(1)"}, 7],
        ["w1", {"url": "https://portal.example.nl/x"}, 0],
        ["w1", {"url": "https://portal.example.nl/x"}, "week"],
    ],
)
def test_create_token_validates_its_input(ows, args):
    assert "createToken" in _error(ows.call("OCDService.createToken", ows.token, *args))


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("leeg.pdf", b"", "empty"),
        ("virus.exe", b"MZ", "not allowed"),
        ("groot.pdf", b"x" * 2048, "too large"),
    ],
)
def test_uploads_refuse_empty_large_and_disallowed_files(ows, name, data, problem):
    ows.srv.configure(max_upload_bytes=1024)
    response = ows.http.post(
        ows.srv.base_url + "/fileService.php",
        data={"sessionId": ows.token},
        files={"file": (name, data)},
        timeout=30,
    )
    assert (
        response.status_code == 200 and problem in response.json()["error"]["message"]
    )


def test_downloads_without_a_session_are_refused(ows):
    ouid = ows.srv.store.one("SELECT file_ouid FROM dossier LIMIT 1")[0]
    url = ows.srv.base_url + "/fileServiceDownload"
    refused = requests.get(
        url, params={"ouid": ouid, "class": "AttachedDocument"}, timeout=30
    )
    assert (
        refused.status_code == 403
        and refused.json()["error"]["message"] == "Access denied; please login first"
    )
    missing = requests.get(
        url,
        params={"ouid": "nope", "class": "AttachedDocument"},
        cookies={"PHPSESSID": ows.token},
        timeout=30,
    )
    assert missing.status_code == 404


def test_attach_refuses_unknown_records_types_and_keys(ows):
    candidate = _first_candidate(ows)
    ouid = ows.srv.store.one("SELECT file_ouid FROM dossier LIMIT 1")[0]
    base = {"fileUid": ouid, "typeId": "1", "subject": "CV"}
    assert "candidateUid" in _error(
        ows.call(
            "AttachedDocumentsService.add", ows.token, {**base, "candidateUid": "nope"}
        )
    )
    assert "typeId" in _error(
        ows.call(
            "AttachedDocumentsService.add",
            ows.token,
            {**base, "candidateUid": candidate, "typeId": "999"},
        )
    )
    assert "exactly one" in _error(
        ows.call("AttachedDocumentsService.add", ows.token, base)
    )
    assert _error(
        ows.call(
            "AttachedDocumentsService.add",
            ows.token,
            {**base, "taskUid": "t-1", "colour": "red"},
        )
    )
    assert ows.result(
        "AttachedDocumentsService.add", {**base, "taskUid": "t-1", "private": "false"}
    ).isdigit()


# ---- seed data -----------------------------------------------------------------------


def test_seed_data_is_deterministic_and_messy(make_sandbox):
    one, two, other = make_sandbox(seed=5), make_sandbox(seed=5), make_sandbox(seed=6)
    query = 'SELECT uid, "Person.firstName", "Person.emailPrimary" FROM "CandidateService" ORDER BY _id'
    assert one.store.all(query) == two.store.all(query) != other.store.all(query)

    rows = one.store.all(
        'SELECT "Person.firstName", "Person.lastName", "Person.emailPrimary", "Person.phoneMobile", "Person.infix" FROM "CandidateService"'
    )
    firsts, lasts, emails, phones, infixes = (
        list(filter(None, col)) for col in zip(*rows, strict=True)
    )
    assert any(f != f.strip() for f in firsts) and any(f.islower() for f in firsts)
    assert any(last.isupper() for last in lasts) and any(
        not last.isascii() for last in lasts
    )
    assert any(e != e.strip() or e != e.lower() for e in emails)
    assert all(
        e.strip().lower().split("@")[1].split(".")[-2] == "example" for e in emails
    )
    assert {p[:3] for p in phones} >= {"061", "+31", "06-"} or len(
        {len(p) for p in phones}
    ) > 3
    assert {"van der", "de"} <= set(infixes)
    duplicates = one.store.one(
        'SELECT COUNT(*) FROM (SELECT lower(trim("Person.emailPrimary")) e FROM "CandidateService" '
        "WHERE e IS NOT NULL GROUP BY e HAVING COUNT(*) > 1)"
    )[0]
    assert duplicates > 0


# ---- malformed and hostile requests --------------------------------------------------


@pytest.fixture(scope="module")
def tough():
    """One small sandbox without a rate limit, shared by the hostile-request tests."""
    from otyspd.sandbox import serve

    srv = serve(records=100, rate_limit=None)
    http = requests.Session()
    token = http.post(
        srv.url, json={"method": "loginByUid", "params": [srv.api_key], "id": 1}
    ).json()["result"]
    yield srv, http, token
    http.close()
    srv.stop()


@pytest.fixture
def quiet(capfd, caplog):
    """Fails the test if the sandbox printed a traceback or logged an error."""
    yield
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def _raw(srv, text: str | bytes) -> dict:
    response = requests.post(srv.url, data=text, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _rpc(tough, method: str, *params, id=1) -> dict:
    srv, http, _ = tough
    response = http.post(
        srv.url, json={"method": method, "params": list(params), "id": id}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_object_params_take_only_ascii_digit_keys_as_positions(tough, quiet):
    srv, _, token = tough
    # "²" passes str.isdigit() but is no position: it is a named key, so no token comes first.
    answer = _raw(srv, json.dumps({"method": "check", "params": {"²": token}, "id": 7}))
    assert answer == {
        "error": {"message": "Access denied; please login first", "code": 0},
        "id": 7,
    }
    # Positions order by value however many digits they have (no int() of the key).
    long_key = "1" + "0" * 5000
    answer = _raw(
        srv, json.dumps({"method": "check", "params": {long_key: 1, "0": token}})
    )
    assert answer["result"]["clientId"] == 4321


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"method":"","params":[],"id":9}', -32600),
        ('{"method":{"a":1},"params":[],"id":9}', -32600),
        (
            '{"method":"check","params":' + "[" * 100_000 + "]" * 100_000 + ',"id":9}',
            -32700,
        ),
        ('{"method":"check","params":' + "[" * 600 + "]" * 600 + ',"id":9}', -32700),
        ('{"method":"check","params":[NaN],"id":9}', -32700),
        ('{"method":"check","params":[Infinity],"id":9}', -32700),
        ('{"method":"check","params":[1' + "0" * 5000 + '],"id":9}', -32700),
    ],
    ids=[
        "empty-method",
        "object-method",
        "deep-100000",
        "deep-600",
        "nan",
        "inf",
        "huge-int-text",
    ],
)
def test_malformed_bodies_get_an_ows_error_and_the_server_lives_on(
    tough, quiet, body, code
):
    srv, _, token = tough
    answer = _raw(srv, body)
    assert answer["error"]["code"] == code, answer
    assert answer["id"] == (9 if code == -32600 else None)
    assert _rpc(tough, "check", token)["result"]["clientId"] == 4321


def test_nesting_up_to_512_levels_is_read(tough, quiet):
    srv, _, token = tough
    inner = (
        "[" * 510 + "]" * 510
    )  # 511 with the params array, 512 with the request object
    answer = _raw(
        srv, '{"method":"check","params":["' + token + '",' + inner + '],"id":3}'
    )
    assert answer["result"]["clientId"] == 4321 and answer["id"] == 3


def _raw_http(srv, head: bytes, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send one hand-made HTTP request; (status, headers, body) of the answer."""
    with socket.create_connection((srv.host, srv.port), timeout=10) as conn:
        conn.sendall(head + b"\r\n" + body)
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    top, _, rest = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, rest


@pytest.mark.parametrize(
    ("length_headers", "status", "problem"),
    [
        (b"Content-Length: abc\r\n", 400, "Content-Length"),
        (b"Content-Length: -5\r\n", 400, "Content-Length"),
        (b"Content-Length: \xc2\xb2\r\n", 400, "Content-Length"),
        (b"", 400, "Content-Length header is missing"),
        (b"Content-Length: 2\r\nContent-Length: 3\r\n", 400, "twice"),
        (b"Transfer-Encoding: chunked\r\n", 400, "chunked"),
        (b"Content-Length: 99999999999999999999999\r\n", 413, "too large"),
    ],
    ids=["letters", "negative", "superscript", "missing", "twice", "chunked", "huge"],
)
def test_a_bad_content_length_gets_http_400_with_a_json_error_and_close(
    tough, quiet, length_headers, status, problem
):
    srv, _, token = tough
    head = b"POST /jservice.php HTTP/1.1\r\nHost: 127.0.0.1\r\n" + length_headers
    got, headers, body = _raw_http(srv, head, b"{}")
    assert got == status
    assert headers["Connection"] == "close"
    answer = json.loads(body)
    assert answer["error"]["code"] == -32700 and answer["id"] is None
    assert problem in answer["error"]["message"]
    assert _rpc(tough, "check", token)["result"]["clientId"] == 4321


def test_an_exception_inside_a_method_is_an_internal_error_echoing_the_id(
    tough, monkeypatch, caplog
):
    srv, _, token = tough

    def broken(*args):
        raise KeyError("made-up bug")

    monkeypatch.setattr(srv.dispatcher, "g_getOptionLists", broken)
    answer = _rpc(
        tough, "CandidateService.getOptionLists", token, ["statusId"], id="x1"
    )
    assert answer["id"] == "x1" and answer["error"]["code"] == -32603
    assert "Internal sandbox error: KeyError" in answer["error"]["message"]
    # In a batch only the broken call fails.
    batch = _rpc(
        tough,
        "MultiService.execute",
        [
            {
                "method": "CandidateService.getOptionLists",
                "args": [token, ["statusId"]],
            },
            {"method": "check", "args": [token]},
        ],
    )["result"]
    assert batch[0]["status"] == "error" and batch[0]["code"] == -32603
    assert batch[1]["status"] == "success"
    assert any("sandbox failed" in r.getMessage() for r in caplog.records)


def _first_uid(tough, service: str = "CandidateService"):
    _, _, token = tough
    return _rpc(tough, f"{service}.getList", token, {"what": {"uid": 1}, "limit": 1})[
        "result"
    ][0]["uid"]


@pytest.mark.parametrize(
    "call",
    [
        lambda t, u: ("CandidateService.getListEx", {"limit": 1, "offset": 10**30}),
        lambda t, u: ("CandidateService.getListEx", {"limit": 10**30}),
        lambda t, u: ("CandidateService.getList", {"limit": "9" * 30}),
        lambda t, u: ("CandidateService.retrieveDuplicateInfo", 10**30),
        lambda t, u: ("CandidateService.getDetail", 10**30, {"uid": 1}),
        lambda t, u: (
            "CandidateService.update",
            10**30,
            {"Person": {"firstName": "X"}},
        ),
        lambda t, u: ("UserService.getDetail", 10**30, {"uid": 1}),
        lambda t, u: ("UserService.getDetail", "9" * 30, {"uid": 1}),
        lambda t, u: ("CandidateService.delete", -(10**30)),
        lambda t, u: (
            "CandidateService.getList",
            {
                "condition": {
                    "type": "COND",
                    "field": "internalId",
                    "op": "EQ",
                    "param": 10**30,
                }
            },
        ),
        lambda t, u: ("CandidateService.update", u, {"statusId": 10**30}),
        lambda t, u: (
            "VacancyService.update",
            _first_uid(t, "VacancyService"),
            {"salaryMin": 10**400},
        ),
    ],
    ids=[
        "offset",
        "limit",
        "limit-text",
        "duplicate-info",
        "detail-id",
        "update-id",
        "user-id",
        "user-id-text",
        "delete-negative",
        "condition",
        "field-value",
        "float-too-big",
    ],
)
def test_numbers_too_big_for_sqlite_are_refused_as_out_of_range(tough, quiet, call):
    method, *args = call(tough, _first_uid(tough))
    _, _, token = tough
    before = tough[0].stats["calls"]
    answer = _rpc(tough, method, token, *args)
    assert answer["error"]["code"] == -32602, answer
    assert "out of range" in answer["error"]["message"]
    assert tough[0].stats["calls"] != before  # it reached the method stage


def test_a_huge_digit_string_can_still_be_a_personal_nr(tough, quiet):
    _, _, token = tough
    answer = _rpc(tough, "CandidateService.retrieveDuplicateInfo", token, "9" * 30)
    assert answer["error"]["code"] == 404  # looked up as a personalNr, not refused


@pytest.mark.parametrize(
    ("flag", "truthy"),
    [
        ("0", False),
        ("", False),
        (0, False),
        (False, False),
        (None, False),
        ([], False),
        ("1", True),
        (1, True),
        (True, True),
        ("true", True),
        ("false", True),
        (2, True),
    ],
)
def test_list_flags_are_read_as_php_reads_them(ows, flag, truthy):
    # ows: 300 candidates, so the 200 cap and the 1000 cap differ.
    page = ows.result(
        "CandidateService.getListEx",
        {
            "what": {"uid": 1},
            "limit": 500,
            "excludeLimitCheck": flag,
            "getTotalCount": flag,
        },
    )
    assert len(page["listOutput"]) == (300 if truthy else 200)
    assert page["totalCount"] == (300 if truthy else None)


def test_set_language_exists_only_on_the_record_services(tough, quiet):
    from otyspd.sandbox.schema import SERVICES

    _, _, token = tough
    for service in SERVICES:
        assert _rpc(tough, f"Otys.Services.{service}.setLanguage", token, "nl") == {
            "result": True,
            "id": 1,
        }
    for service in ("FooService", "DossierService", "MultiService", "LanguageService"):
        answer = _rpc(tough, f"Otys.Services.{service}.setLanguage", token, "en")
        assert answer["error"]["code"] == -32601
        assert f"{service}.setLanguage does not exist" in answer["error"]["message"]


def test_manual_languages_outside_the_tenant_are_accepted_and_read_as_null(
    tough, quiet
):
    srv, _, token = tough
    assert "es" not in _rpc(tough, "check", token)["result"]["contentLanguages"]
    uid = srv.store.one(
        'SELECT uid FROM "VacancyService" WHERE "title#en" IS NOT NULL LIMIT 1'
    )[0]
    inner = {"method": "VacancyService.getDetail", "params": [token, uid, {"title": 1}]}
    for code in ("cs", "es", "us"):
        wrapped = _rpc(tough, "LanguageService.wrapRequest", code, inner)
        assert wrapped["result"] == {"title": None}
    assert _rpc(tough, "LanguageService.wrapRequest", "en", inner)["result"]["title"]
    assert _rpc(tough, "VacancyService.setLanguage", token, "es")["result"] is True
    detail = _rpc(tough, "VacancyService.getDetail", token, uid, {"title": 1})
    assert detail["result"] == {"title": None}
    _rpc(tough, "VacancyService.setLanguage", token, "nl")


def _files(srv) -> int:
    return srv.store.one("SELECT COUNT(*) FROM files")[0]


def _post_upload(srv, **kwargs) -> dict:
    response = requests.post(srv.base_url + "/fileService.php", timeout=30, **kwargs)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize(
    "kwargs",
    [
        lambda tok: {"data": {"sessionId": tok}},  # urlencoded, not multipart
        lambda tok: {"data": tok.encode(), "headers": {"Content-Type": "text/plain"}},
        lambda tok: {
            "data": (
                b'--abc\r\nContent-Disposition: form-data; name="sessionId"\r\n\r\n'
                + tok.encode()
                + b"\r\n--abc--\r\n"
            ),
            "headers": {"Content-Type": "multipart/form-data; boundary=xyz"},
        },
        lambda tok: {
            "data": b"--abc\r\n\r\n",
            "headers": {"Content-Type": "multipart/form-data"},
        },
    ],
    ids=["urlencoded", "text", "boundary-mismatch", "no-boundary"],
)
def test_an_upload_that_is_not_multipart_gets_an_upload_error(tough, quiet, kwargs):
    srv, _, token = tough
    answer = _post_upload(srv, **kwargs(token))
    message = answer["error"]["message"]
    assert "Access denied" not in message and "multipart/form-data" in message
    assert answer["error"]["code"] == 400


def test_uploads_are_all_or_nothing(tough, quiet):
    srv, _, token = tough
    before = _files(srv)
    answer = _post_upload(
        srv,
        data={"sessionId": token},
        files=[("file", ("a.txt", b"hi")), ("file2", ("b.exe", b"MZ"))],
    )
    assert "not allowed" in answer["error"]["message"]
    assert "none of the 2 files was stored" in answer["error"]["message"]
    assert _files(srv) == before


def test_a_repeated_file_field_name_is_refused(tough, quiet):
    srv, _, token = tough
    before = _files(srv)
    answer = _post_upload(
        srv,
        data={"sessionId": token},
        files=[("file", ("a.txt", b"hi")), ("file", ("b.txt", b"yo"))],
    )
    assert "'file' is used by 2 files" in answer["error"]["message"]
    assert _files(srv) == before


def test_several_files_are_answered_each_under_its_field_name(tough, quiet):
    srv, _, token = tough
    before = _files(srv)
    answer = _post_upload(
        srv,
        data={"sessionId": token},
        files=[("file", ("a.txt", b"hi")), ("cv", ("b.pdf", b"%PDF"))],
    )
    assert set(answer) == {"file", "cv"}
    assert answer["file"]["name"] == "a.txt" and answer["cv"]["size"] == 4
    assert answer["file"]["ouid"] != answer["cv"]["ouid"]
    assert _files(srv) == before + 2


def test_a_session_id_sent_twice_counts_with_its_last_value(tough, quiet):
    srv, _, token = tough
    answer = _post_upload(
        srv,
        data=[("sessionId", "bogus"), ("sessionId", token)],
        files={"file": ("a.txt", b"hi")},
    )
    assert answer["file"]["name"] == "a.txt"
