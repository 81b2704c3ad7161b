"""The manual's own example requests, sent as raw JSON to the sandbox.

Each test sends the request as section 2 or 3 of the OWS manual shows it (with
real values in place of the placeholders) and checks the documented response.
"""

from __future__ import annotations

import re

import requests

from otyspd.sandbox.server import FIELD_COLUMNS


def _manual(method: str, params: list, id: int = 1) -> dict:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": id}


def test_login_by_uid_returns_a_session_token(sandbox):
    http = requests.Session()
    answer = http.post(
        sandbox.url, json=_manual("loginByUid", [sandbox.api_key])
    ).json()
    http.close()
    assert set(answer) == {"result", "id"} and answer["id"] == 1
    assert re.fullmatch(r"[a-z0-9]{26}", answer["result"])


def test_login_by_uid_with_a_wrong_key_returns_false(ows):
    assert ows.call("loginByUid", "not-the-key") == {"result": False, "id": 1}


def test_check_describes_client_and_user(ows):
    result = ows.call("check", ows.token)["result"]
    assert set(result) == {
        "clientId",
        "client",
        "id",
        "username",
        "email",
        "contentLanguages",
        "defaultContentLanguage",
    }
    assert isinstance(result["clientId"], int) and isinstance(result["id"], int)
    assert result["username"] == ows.srv.username
    assert "nl" in result["contentLanguages"]
    assert result["defaultContentLanguage"] == "nl"


def test_logout_twice_gives_true_then_login_first(ows):
    assert ows.call("logout", ows.token) == {"result": True, "id": 1}
    assert ows.call("logout", ows.token) == {
        "error": {"message": "Access denied; please login first", "code": 0},
        "id": 1,
    }


def test_get_list_ex_example_with_and_condition_and_two_field_sort(ows):
    body = _manual(
        "Otys.Services.CandidateService.getListEx",
        [
            ows.token,
            {
                "what": {"uid": 1, "Person": {"firstName": 1, "lastName": 1}},
                "condition": {
                    "type": "AND",
                    "items": [
                        {"type": "COND", "field": "userId", "op": "EQ", "param": "2"},
                        {"type": "COND", "field": "statusId", "op": "NE", "param": "3"},
                    ],
                },
                "sort": {"Person.lastName": "ASC", "Person.firstName": "ASC"},
                "limit": 100,
                "offset": 0,
                "getTotalCount": 1,
            },
        ],
    )
    answer = ows.post(body).json()
    result = answer["result"]
    assert set(result) == {"listOutput", "searchExtras", "totalCount"}
    assert result["searchExtras"] == []
    rows = result["listOutput"]
    assert rows and all(set(r) == {"uid", "Person"} for r in rows)
    assert all(set(r["Person"]) == {"firstName", "lastName"} for r in rows)

    # The rows are exactly the matching candidates, sorted case-insensitively.
    expected = ows.srv.store.all(
        'SELECT uid FROM "CandidateService" WHERE "userId" = 2 AND "statusId" <> 3 '
        'ORDER BY "Person.lastName", "Person.firstName", _id'
    )
    assert result["totalCount"] == len(expected)
    assert [r["uid"] for r in rows] == [e[0] for e in expected][:100]


def test_get_detail_example_returns_the_fields_asked_for(ows):
    uid = ows.result("CandidateService.getList", {"limit": 1})[0]["uid"]
    body = _manual(
        "Otys.Services.CandidateService.getDetail",
        [
            ows.token,
            uid,
            {"Person": {"firstName": 1, "lastName": 1}, "statusId": 1, "userId": 1},
        ],
    )
    result = ows.post(body).json()["result"]
    assert set(result) == {"Person", "statusId", "userId"}
    assert set(result["Person"]) == {"firstName", "lastName"}
    assert isinstance(result["statusId"], int) and isinstance(result["userId"], int)


def test_add_example_returns_the_new_uid(ows):
    body = _manual(
        "Otys.Services.CandidateService.add",
        [
            ows.token,
            {
                "Person": {"firstName": "Fenna", "lastName": "Hoekstra"},
                "statusId": 2,
                "userId": 3,
            },
        ],
    )
    uid = ows.post(body).json()["result"]
    assert isinstance(uid, str) and uid
    stored = ows.srv.get("CandidateService", uid)
    assert stored["Person"]["lastName"] == "Hoekstra"
    assert stored["statusId"] == 2 and stored["userId"] == 3


def test_update_example_changes_only_the_given_fields(ows):
    uid = ows.result("CandidateService.getList", {"limit": 1})[0]["uid"]
    before = ows.srv.get("CandidateService", uid)
    body = _manual(
        "Otys.Services.CandidateService.update",
        [
            ows.token,
            uid,
            {
                "Person": {"firstName": "Mees", "lastName": "Kuipers"},
                "statusId": 4,
                "userId": 2,
            },
        ],
    )
    assert ows.post(body).json() == {"result": {"Person": []}, "id": 1}
    after = ows.srv.get("CandidateService", uid)
    assert (after["Person"]["firstName"], after["Person"]["lastName"]) == (
        "Mees",
        "Kuipers",
    )
    assert (after["statusId"], after["userId"]) == (4, 2)
    assert after["Person"]["emailPrimary"] == before["Person"]["emailPrimary"]
    assert after["lastModified"] > before["lastModified"]


def test_delete_example_removes_the_record(ows):
    uid = ows.result("CandidateService.getList", {"limit": 1})[0]["uid"]
    body = _manual("Otys.Services.CandidateService.delete", [ows.token, uid])
    assert ows.post(body).json() == {"result": {"Person": []}, "id": 1}
    gone = ows.call("CandidateService.getDetail", ows.token, uid, {"uid": 1})
    assert gone["error"]["message"].startswith("Record not found")


def _vacancy_with_english_title(srv) -> tuple[str, str, str]:
    return srv.store.one(
        'SELECT uid, "title#nl", "title#en" FROM "VacancyService" '
        'WHERE "title#en" IS NOT NULL AND "title#en" <> "title#nl" ORDER BY _id LIMIT 1'
    )


def test_set_language_example_switches_the_content_language(ows):
    uid, _dutch, english = _vacancy_with_english_title(ows.srv)
    body = _manual("Otys.Services.VacancyService.setLanguage", [ows.token, "en"])
    assert ows.post(body).json() == {"result": True, "id": 1}
    assert ows.result("VacancyService.getDetail", uid, {"title": 1}) == {
        "title": english
    }


def test_wrap_request_example_runs_the_inner_call_in_that_language(ows):
    uid, dutch, english = _vacancy_with_english_title(ows.srv)
    inner = _manual(
        "Otys.Services.VacancyService.getDetail", [ows.token, uid, {"title": 1}]
    )
    answer = ows.post(
        _manual("Otys.Services.LanguageService.wrapRequest", ["en", inner])
    ).json()
    assert answer == {"result": {"title": english}, "id": 1}
    # The session language itself did not change.
    assert ows.result("VacancyService.getDetail", uid, {"title": 1}) == {"title": dutch}


def test_get_option_lists_example_returns_id_to_label_maps(ows):
    body = _manual(
        "Otys.Services.CandidateService.getOptionLists",
        [ows.token, ["statusId", "userId"]],
    )
    result = ows.post(body).json()["result"]
    assert set(result) == {"statusId", "userId"}
    for options in result.values():
        assert options and all(
            isinstance(k, str) and isinstance(v, str) for k, v in options.items()
        )
    assert result["statusId"]["1"] == "Nieuw"


def test_retrieve_duplicate_info_example_follows_a_merge_chain(ows):
    # A candidate merged into one that was merged again (A -> B -> C).
    a, b, c = ows.srv.store.one(
        "SELECT m1.src_uid, m1.dst_uid, m2.dst_uid FROM merges m1 JOIN merges m2 "
        "ON m2.src_uid = m1.dst_uid ORDER BY m1.id LIMIT 1"
    )
    body = _manual(
        "Otys.Services.CandidateService.retrieveDuplicateInfo", [ows.token, a]
    )
    result = ows.post(body).json()["result"]
    assert set(result) == {
        "mergeHistory",
        "newCandidateId",
        "newCandidateOuid",
        "newCandidatePersonalNr",
    }
    assert result["newCandidateOuid"] == c
    items = list(result["mergeHistory"].values())
    assert [(i["oidSource"], i["oidDestination"]) for i in items] == [(a, b), (b, c)]
    assert set(items[0]) == {
        "mergeDateTime",
        "idSource",
        "oidSource",
        "personalNrSource",
        "idDestination",
        "oidDestination",
        "personalNrDestination",
    }
    assert list(result["mergeHistory"]) == [i["idSource"] for i in items]
    assert (
        ows.srv.get("CandidateService", c)["mergeHistory"][items[0]["idSource"]]
        == items[0]
    )


def test_create_token_example_returns_a_token(ows):
    body = _manual(
        "Otys.Services.OCDService.createToken",
        [
            ows.token,
            "webuser-0001",
            {"url": "https://portal.example.nl/portal/timesheets"},
            "7",
        ],
    )
    token = ows.post(body).json()["result"]
    assert isinstance(token, str) and len(token) >= 20


def _upload(
    ows, name: str = "cv.pdf", data: bytes = b"%PDF-1.4 made-up CV"
) -> requests.Response:
    url = ows.srv.base_url + "/fileService.php"
    return ows.http.post(
        url,
        data={"sessionId": ows.token},
        files={"file": (name, data, "application/pdf")},
        timeout=30,
    )


def test_upload_returns_file_metadata_keyed_by_form_field(ows):
    answer = _upload(ows).json()
    assert list(answer) == ["file"]
    meta = answer["file"]
    assert set(meta) == {"ouid", "name", "mimeType", "size"}
    assert meta["name"] == "cv.pdf" and meta["mimeType"] == "application/pdf"
    assert meta["size"] == len(b"%PDF-1.4 made-up CV")


def test_document_type_get_list_ex_example(ows):
    what = dict.fromkeys(
        [
            "uid",
            "name",
            "forDocuments",
            "forCandidates",
            "forVacancies",
            "forCustomers",
            "forCustomerContacts",
            "forTasks",
            "forSales",
            "forProjects",
        ],
        1,
    )
    body = _manual(
        "Otys.Services.DocumentTypeService.getListEx",
        [ows.token, {"what": what, "limit": 100, "offset": 0, "getTotalCount": True}],
    )
    result = ows.post(body).json()["result"]
    assert result["searchExtras"] == [] and result["totalCount"] == len(
        result["listOutput"]
    )
    cv = next(t for t in result["listOutput"] if t["name"] == "CV")
    assert set(cv) == set(what)
    assert (
        cv["uid"] == "1" and cv["forDocuments"] is True and cv["forCandidates"] is True
    )


def test_attach_then_list_count_and_download_a_document(ows):
    ouid = _upload(ows, "motivatie.txt", b"Beste lezer, ...").json()["file"]["ouid"]
    candidate = ows.result("CandidateService.getList", {"limit": 1})[0]["uid"]

    add = _manual(
        "Otys.Services.AttachedDocumentsService.add",
        [
            ows.token,
            {
                "candidateUid": candidate,
                "fileUid": ouid,
                "typeId": "2",
                "subject": "Motivatie",
            },
        ],
    )
    dossier_id = ows.post(add).json()["result"]
    assert isinstance(dossier_id, str) and dossier_id.isdigit()

    args = {
        "objectEntityId": 2,
        "objectUid": candidate,
        "restrictClass": ["AttachedDocs"],
        "limit": 100,
        "offset": 0,
    }
    items = ows.post(
        _manual("Otys.Services.DossierService.getList", [ows.token, args])
    ).json()["result"]
    item = next(i for i in items if i["id_rec"] == ouid)
    assert item["subject"] == "Motivatie" and item["typeId"] == "2"
    count = ows.post(
        _manual("Otys.Services.DossierService.getCount", [ows.token, args])
    ).json()["result"]
    assert count == len(items)

    url = ows.srv.base_url + "/fileServiceDownload"
    download = requests.get(
        url,
        params={"ouid": item["id_rec"], "class": "AttachedDocument"},
        cookies={"PHPSESSID": ows.token},
        timeout=30,
    )
    assert download.status_code == 200 and download.content == b"Beste lezer, ..."
    assert 'filename="motivatie.txt"' in download.headers["Content-Disposition"]


def test_download_with_the_legacy_session_parameter(ows):
    ouid = ows.srv.store.one("SELECT file_ouid FROM dossier ORDER BY id LIMIT 1")[0]
    url = ows.srv.base_url + "/fileServiceDownload"
    params = {"ouid": ouid, "class": "AttachedDocument", "sessionId": ows.token}
    response = requests.get(url, params=params, timeout=30)
    assert response.status_code == 200 and response.content


def test_field_definition_pages_need_basic_auth_and_list_every_field(sandbox):
    base = sandbox.base_url + "/info/"
    assert requests.get(base, timeout=30).status_code == 401
    auth = (sandbox.username, sandbox.password)
    index = requests.get(base, auth=auth, timeout=30)
    assert "Otys.Services.CandidateService" in index.text
    page = requests.get(
        base + "detail.php",
        params={"service": "Otys.Services.CandidateService"},
        auth=auth,
        timeout=30,
    ).text
    headers = re.findall(r"<th>(.*?)</th>", page)
    assert headers == [title for title, _ in FIELD_COLUMNS]
    rows = {
        cells[0]: cells
        for cells in (
            re.findall(r"<td>(.*?)</td>", row)
            for row in re.findall(r"<tr>(.*?)</tr>", page)
        )
        if cells
    }
    assert rows["Person.firstName"][1:3] == ["string", "yes"]
    assert rows["internalId"][5] == "no"  # Updatable
    assert rows["statusId"][9] == "yes"  # Has options


def test_full_and_short_method_names_and_query_strings_are_equivalent(ows):
    args = {"what": {"uid": 1}, "limit": 5}
    full = ows.call("Otys.Services.CandidateService.getList", ows.token, args)
    short = ows.call("CandidateService.getList", ows.token, args)
    body = _manual("CandidateService.getList", [ows.token, args])
    remarked = ows.http.post(
        ows.srv.url + "?remark=CandidateService.getList", json=body, timeout=30
    ).json()
    assert full == short == remarked
