"""Session and connect(): options, login at connect, language, logout, reprs."""

from __future__ import annotations

import http.server
import json
import logging
import threading

import pytest
import requests
from fake_ows import KEY, URL, Clock, FakeOWS, Fault

import otyspd
from otyspd import session as session_module
from otyspd.errors import (
    AccessDenied,
    BadRequest,
    ConfigurationError,
    InvalidInput,
    NotFound,
    OtysError,
)
from otyspd.session import LANGUAGE_SERVICES, Session, connect

GET = "Otys.Services.CandidateService.getDetail"


@pytest.fixture
def fake() -> FakeOWS:
    fake = FakeOWS()
    fake.handlers[GET] = lambda uid, what=None: {"uid": uid}
    for service in LANGUAGE_SERVICES:
        fake.handlers[f"Otys.Services.{service}.setLanguage"] = lambda code: True
    return fake


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("OTYS_API_KEY", "OTYS_URL", "OTYS_USERNAME", "OTYS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    yield
    session_module._last_session = None


def open_session(fake: FakeOWS, **options) -> Session:
    return connect(KEY, URL, http=fake.session(), sleep=lambda s: None, **options)


# ---- connect -------------------------------------------------------------------------


def test_connect_logs_in_and_checks_at_once_and_becomes_the_last_session(fake):
    session = open_session(fake)
    assert fake.methods() == ["loginByUid", "check"]
    assert session.user["username"] == "fake.user"
    assert session.default_language == "nl"
    assert session_module._last_session is session
    assert otyspd.connect is connect


def test_connect_reads_the_key_and_url_from_the_environment(fake, monkeypatch):
    monkeypatch.setenv("OTYS_API_KEY", KEY)
    monkeypatch.setenv("OTYS_URL", URL)
    session = connect(http=fake.session())
    assert session.url == URL
    assert fake.requests[0]["params"] == [KEY]


def test_the_url_defaults_to_the_public_endpoint_and_file_urls_derive_from_it(fake):
    http = fake.session()
    http.mount("https://ows.otys.nl/", fake)
    session = connect(KEY, http=http)
    assert session.url == "https://ows.otys.nl/jservice.php"
    assert session.file_service_url == "https://ows.otys.nl/fileService.php"
    assert session.download_url == "https://ows.otys.nl/fileServiceDownload"
    assert session.base_url == "https://ows.otys.nl/"
    assert session.http is http


def test_a_missing_key_says_how_to_provide_one():
    with pytest.raises(ConfigurationError, match=r"api_key=.*OTYS_API_KEY"):
        connect(url=URL)


@pytest.mark.parametrize(
    "url", ["ows.otys.nl", "ftp://ows.otys.nl/jservice.php", "http://"]
)
def test_a_malformed_url_is_a_configuration_error(url):
    with pytest.raises(ConfigurationError, match="url"):
        connect(KEY, url)


def test_an_unknown_option_is_a_configuration_error_naming_it():
    with pytest.raises(ConfigurationError, match=r"unknown option\(s\) recrods"):
        connect(KEY, URL, recrods=5)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", 0),
        ("timeout", "x"),
        ("retries", -1),
        ("rate_limit", 2.5),
        ("chunk", 0),
    ],
)
def test_bad_option_values_are_configuration_errors(fake, option, value):
    with pytest.raises(ConfigurationError, match=option):
        open_session(fake, **{option: value})
    assert fake.requests == []


def test_a_bad_key_fails_at_connect_with_access_denied():
    fake = FakeOWS(key="the-right-key-is-other")
    with pytest.raises(AccessDenied, match="API key was refused"):
        open_session(fake)
    assert session_module._last_session is None


def test_plain_http_to_another_host_and_verify_off_are_said_out_loud(fake, caplog):
    with caplog.at_level(logging.WARNING, logger="otyspd"):
        open_session(fake, verify=False)
    text = caplog.text
    assert "plain http" in text
    assert "verification is off" in text


def test_verify_is_on_by_default_and_reaches_every_request(fake):
    seen = []
    original = fake.send

    def send(request, **kwargs):
        seen.append(kwargs.get("verify"))
        return original(request, **kwargs)

    fake.send = send
    open_session(fake)
    # requests may swap True for the CA bundle it is told about; never for False.
    assert len(seen) == 2
    assert all(v is True or isinstance(v, str) for v in seen)


def test_username_and_password_come_from_options_or_the_environment(fake, monkeypatch):
    monkeypatch.setenv("OTYS_USERNAME", "env.user")
    monkeypatch.setenv("OTYS_PASSWORD", "env-password-123")
    session = open_session(fake)
    assert (session.username, session.password) == ("env.user", "env-password-123")
    session = open_session(fake, username="given.user", password="given-password-1")
    assert (session.username, session.password) == ("given.user", "given-password-1")
    assert "given-password-1" not in repr(session)


# ---- calls ---------------------------------------------------------------------------


def test_call_and_multi_go_through_the_session(fake):
    session = open_session(fake)
    assert session.call("CandidateService.getDetail", "1", {"uid": 1}) == {"uid": "1"}
    assert fake.requests[-1]["params"] == [session._transport.token, "1", {"uid": 1}]
    results = session.multi({"a": ("Candidate.getDetail", ["2"])})
    assert results["a"].unwrap() == {"uid": "2"}


def test_multi_uses_the_session_chunk_size_unless_given(fake):
    session = open_session(fake, chunk=2)
    session.multi([("CandidateService.getDetail", [str(i)]) for i in range(5)])
    session.multi([("CandidateService.getDetail", [str(i)]) for i in range(5)], chunk=5)
    sizes = [
        len(r["params"][0]) for r in fake.requests if "MultiService" in r["method"]
    ]
    assert sizes == [2, 2, 1, 5]


def test_check_refreshes_the_user(fake):
    session = open_session(fake)
    session.user = None
    assert session.check()["client"] == "Fake Client"
    assert session.user["client"] == "Fake Client"


# ---- content language ----------------------------------------------------------------


def test_calls_inside_a_language_block_are_wrapped_and_outside_are_not(fake):
    session = open_session(fake)
    assert session.language_code is None
    with session.language("EN") as same:
        assert same is session
        assert session.language_code == "en"
        session.call("CandidateService.getDetail", "1")
        with session.language("de"):
            session.multi([("CandidateService.getDetail", ["2"])])
        assert session.language_code == "en"
    session.call("CandidateService.getDetail", "3")

    wrapped, batch, plain = fake.requests[-3:]
    assert wrapped["method"].endswith("wrapRequest") and wrapped["params"][0] == "en"
    assert batch["params"][0][0]["args"][0] == "de"
    assert plain["method"] == GET
    assert session.language_code is None


def test_a_language_can_be_given_per_call_or_turned_off(fake):
    session = open_session(fake)
    session.call("CandidateService.getDetail", "1", language="fr")
    with session.language("en"):
        session.call("CandidateService.getDetail", "2", language=None)
    first, second = fake.requests[-2:]
    assert first["params"][0] == "fr"
    assert second["method"] == GET


def test_the_language_is_per_thread(fake):
    session = open_session(fake)
    seen = []
    with session.language("en"):
        worker = threading.Thread(target=lambda: seen.append(session.language_code))
        worker.start()
        worker.join()
        seen.append(session.language_code)
    assert seen == [None, "en"]


@pytest.mark.parametrize("code", ["xx", "english", "", None, 3])
def test_an_unsupported_language_lists_the_supported_and_the_clients_codes(fake, code):
    session = open_session(fake)
    with pytest.raises(InvalidInput) as caught:
        session.call("CandidateService.getDetail", "1", language=code or "zz")
    text = str(caught.value)
    assert "cs, de, en, es, fr, nl, us" in text
    assert "this client has en, nl" in text
    with (
        pytest.raises(InvalidInput, match="not a content language"),
        session.language(code or 7),
    ):
        pass  # pragma: no cover - never reached
    assert len(fake.requests) == 2


def test_a_language_the_client_lacks_is_warned_about(fake, caplog):
    session = open_session(fake)
    with caplog.at_level(logging.WARNING, logger="otyspd"), session.language("fr"):
        pass
    assert "not one of this client's (en, nl)" in caplog.text


def test_set_language_on_one_service_calls_its_set_language(fake):
    session = open_session(fake)
    session.set_language("en", service="Vacancy")
    request = fake.requests[-1]
    assert request["method"] == "Otys.Services.VacancyService.setLanguage"
    assert request["params"] == [session._transport.token, "en"]
    assert session.language_code is None


def test_set_language_for_the_session_sets_every_main_service_in_one_batch(fake):
    session = open_session(fake)
    with session.language("de"):
        session.set_language("en")
    batch = fake.requests[-1]
    assert batch["method"] == "Otys.Services.MultiService.execute"
    methods = [call["method"] for call in batch["params"][0]]
    assert methods == [f"Otys.Services.{s}.setLanguage" for s in LANGUAGE_SERVICES]
    assert session.language_code == "en"


def test_set_language_raises_when_a_service_refuses(fake):
    session = open_session(fake)
    del fake.handlers["Otys.Services.ProcedureService.setLanguage"]
    with pytest.raises(OtysError, match=r"ProcedureService\.setLanguage"):
        session.set_language("en")
    assert session.language_code is None


# ---- ending --------------------------------------------------------------------------


def test_leaving_the_with_block_logs_out_and_closes_the_session(fake):
    with open_session(fake) as session:
        token = session._transport.token
    assert fake.requests[-1] == {
        "jsonrpc": "2.0",
        "method": "logout",
        "params": [token],
        "id": fake.requests[-1]["id"],
    }
    assert session.closed
    assert session_module._last_session is None
    with pytest.raises(OtysError, match="closed"):
        session.call("CandidateService.getDetail", "1")
    session.close()
    assert fake.count("logout") == 1


def test_logout_twice_and_on_a_dead_session_never_raises(fake):
    session = open_session(fake)
    session.logout()
    session.logout()
    fake.expire_all()
    session.logout()
    assert fake.count("logout") == 1

    # A call after logout logs in again.
    assert session.call("CandidateService.getDetail", "5") == {"uid": "5"}
    assert fake.logins == 2


def test_an_exception_inside_the_with_block_still_logs_out(fake):
    with pytest.raises(KeyError), open_session(fake):
        raise KeyError("boom")
    assert fake.count("logout") == 1


# ---- reprs and secrets ---------------------------------------------------------------


def test_the_session_repr_shows_url_and_user_and_no_secret(fake):
    session = open_session(fake)
    token = session._transport.token
    text = repr(session)
    assert text == f"<otyspd.Session {URL} user='fake.user' client='Fake Client'>"
    assert KEY not in text and token not in text
    assert KEY not in repr(session._transport) and token not in repr(session._transport)
    session.close()
    assert repr(session).endswith(" closed>")


def test_no_log_record_or_error_carries_the_key_or_token(fake, caplog):
    tokens = []

    def echo_secrets(uid, what=None):
        raise Fault(f"bad token {tokens[-1]} key {KEY}")

    with caplog.at_level(logging.DEBUG):
        session = open_session(fake)
        tokens.append(session._transport.token)
        session.call("CandidateService.getDetail", "1")
        fake.expire_all()
        with session.language("en"):
            session.multi([("CandidateService.getDetail", ["2"])])
        tokens.append(session._transport.token)
        fake.handlers[GET] = echo_secrets
        with pytest.raises(OtysError) as caught:
            session.call("CandidateService.getDetail", "3")
        session.close()

    everything = caplog.text + str(caught.value) + repr(caught.value)
    for secret in (KEY, *tokens):
        assert secret not in everything
    assert "bad token *** key ***" in str(caught.value)


# ---- connect over real HTTP on 127.0.0.1 ---------------------------------------------


@pytest.fixture
def local_server(fake):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append(payload)
            body = json.dumps(fake.answer(payload)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jservice.php"
    server.shutdown()
    server.server_close()


def test_connect_over_real_http_calls_and_logs_out(fake, local_server, caplog):
    with (
        caplog.at_level(logging.WARNING, logger="otyspd"),
        connect(KEY, local_server) as session,
    ):
        assert session.user["client"] == "Fake Client"
        assert session.call("CandidateService.getDetail", "7") == {"uid": "7"}
        results = session.multi(
            [("CandidateService.getDetail", ["8"]), ("Candidate.nope", [])]
        )
        assert [r.ok for r in results] == [True, False]
    assert [r["method"] for r in fake.requests][-1] == "logout"
    assert "plain http" not in caplog.text  # loopback is fine


@pytest.mark.parametrize("value", [["records"], "records=5"])
def test_sandbox_options_that_are_not_a_dict_are_a_configuration_error(value):
    with pytest.raises(ConfigurationError, match="sandbox_options must be a dict"):
        connect(sandbox=True, sandbox_options=value)


def test_sandbox_options_of_none_mean_none():
    with connect(sandbox=True, records=200, sandbox_options=None) as session:
        assert session.simulated


def test_sandbox_options_without_a_sandbox_are_a_configuration_error():
    with pytest.raises(ConfigurationError, match="sandbox=True"):
        connect(KEY, URL, sandbox_options={"records": 5})


def test_a_rate_limited_answer_waits_for_retry_after_not_the_budget_headers(fake):
    clock = Clock()
    session = connect(KEY, URL, http=fake.session(), sleep=clock.sleep, clock=clock)
    fake.script.append(
        (
            429,
            b"",
            {
                "Retry-After": "2",
                "X-Orl-Requests-Remaining": "0",
                "X-Orl-Remaining-Timeframe": "40",
            },
        )
    )
    assert session.call("CandidateService.getDetail", "1") == {"uid": "1"}
    assert clock.sleeps == [2.0]


# ---- against the sandbox over real HTTP on 127.0.0.1 ---------------------------------

VACANCIES = {"what": {"uid": 1, "title": 1}, "limit": 50, "sort": {"uid": "ASC"}}


def test_connect_with_sandbox_true_says_the_data_is_simulated_and_stops_it_on_close(
    caplog,
):
    with caplog.at_level(logging.INFO, logger="otyspd"):
        session = connect(sandbox=True, records=200, seed=3)
    server = session.sandbox
    assert "the data is simulated" in caplog.text
    assert session.simulated
    assert repr(session).startswith(
        "<otyspd.Session sandbox (simulated data) http://127.0.0.1:<port>/jservice.php"
    )
    assert "(simulated)" in repr(session)  # the sandbox's client name says so too
    assert session.url == server.url and session.url.startswith("http://127.0.0.1:")
    assert (session.username, session.password) == (server.username, server.password)
    assert server.api_key not in repr(session)
    assert session_module._last_session is session

    page = session.call("CandidateService.getListEx", {"what": {"uid": 1}, "limit": 5})
    assert len(page["listOutput"]) == 5

    session.close()
    assert server.stats["logouts"] == 1
    with pytest.raises(requests.ConnectionError):
        requests.post(server.url, json={}, timeout=2)


def test_sandbox_options_reach_the_sandbox_and_an_unknown_one_is_refused():
    with connect(
        sandbox=True, records=200, sandbox_options={"rate_limit": 1000}
    ) as session:
        assert session.sandbox.knobs["rate_limit"] == 1000
    with pytest.raises((TypeError, ValueError)):
        connect(sandbox=True, records=200, no_such_knob=1)


def test_call_multi_and_errors_against_the_sandbox(make_sandbox):
    server = make_sandbox(records=200)
    with connect(server.api_key, server.url) as session:
        assert session.user["username"] == server.username
        uids = [
            r["uid"]
            for r in session.call(
                "Candidate.getListEx", VACANCIES | {"what": {"uid": 1}}
            )["listOutput"]
        ]

        listed = session.multi(
            [("CandidateService.getDetail", [uid, {"uid": 1}]) for uid in uids[:3]]
            + [("CandidateService.getDetail", ["no-such-uid", {"uid": 1}])]
        )
        assert [r.ok for r in listed] == [True, True, True, False]
        assert [r.data["uid"] for r in listed[:3]] == uids[:3]
        assert isinstance(listed[3].error, NotFound)

        keyed = session.multi(
            {
                "count": (
                    "CandidateService.getListEx",
                    [{"what": {"uid": 1}, "limit": 1, "getTotalCount": 1}],
                ),
                "bad": ("CandidateService.getDetail", [uids[0], {"noSuchField": 1}]),
            }
        )
        assert keyed["count"].data["totalCount"] == 200
        assert isinstance(keyed["bad"].error, BadRequest)

        with pytest.raises(NotFound, match="no-such-uid"):
            session.call("CandidateService.getDetail", "no-such-uid", {"uid": 1})


def test_content_language_wraps_and_set_language_against_the_sandbox(make_sandbox):
    server = make_sandbox(records=200)
    with connect(server.api_key, server.url) as session:
        dutch = session.call("VacancyService.getListEx", VACANCIES)["listOutput"]
        with session.language("en"):
            english = session.call("VacancyService.getListEx", VACANCIES)["listOutput"]
            batch = session.multi([("VacancyService.getListEx", [VACANCIES])])
        assert batch[0].data["listOutput"] == english
        assert english != dutch
        assert server.stats["calls"]["LanguageService.wrapRequest"] == 2

        session.set_language("en")
        assert (
            session.call("VacancyService.getListEx", VACANCIES)["listOutput"] == english
        )


def test_an_expiring_sandbox_session_is_renewed_without_the_caller_noticing(
    make_sandbox,
):
    server = make_sandbox(records=200)
    server.configure(expire_after_calls=3)
    with connect(server.api_key, server.url) as session:
        for _ in range(4):
            assert session.call(
                "CandidateService.getListEx", {"what": {"uid": 1}, "limit": 2}
            )
        results = session.multi([("CandidateService.getListEx", [{"limit": 1}])] * 3)
        assert all(r.ok for r in results)
    assert server.stats["logins"] >= 3


def test_a_429_from_the_sandbox_is_waited_out_and_the_call_succeeds(make_sandbox):
    server = make_sandbox(records=200)
    with connect(server.api_key, server.url, rate_limit=0) as session:
        # Another program with the same key spends the budget behind the session's back.
        server.configure(rate_limit=2, rate_window=1.0)
        login = {"method": "loginByUid", "params": [server.api_key], "id": 1}
        for _ in range(3):
            requests.post(server.url, json=login, timeout=5)
        refused = server.stats["rate_limited"]
        assert refused >= 1

        assert session.call(
            "CandidateService.getListEx", {"what": {"uid": 1}, "limit": 1}
        )
        assert server.stats["rate_limited"] == refused + 1
        server.configure(rate_limit=None)


def test_the_session_paces_itself_under_a_tight_sandbox_limit(make_sandbox):
    server = make_sandbox(records=200)
    with connect(server.api_key, server.url) as session:
        server.configure(rate_limit=3, rate_window=1.0)
        # With login and check just sent, three more calls overrun a budget of three.
        for _ in range(3):
            session.call("CandidateService.getListEx", {"what": {"uid": 1}, "limit": 1})
        server.configure(rate_limit=None)
    assert server.stats["rate_limited"] == 0


def test_session_methods_show_the_full_documentation_of_what_they_call():
    import otyspd
    from otyspd import files, paging, writeback

    assert "excludeLimitCheck" in otyspd.Session.read_list.__doc__
    assert "allow_delete" in otyspd.Session.write_back.__doc__
    assert otyspd.Session.diff.__doc__ == writeback.diff.__doc__
    for method in (otyspd.Session.read_list, otyspd.Session.upload):
        assert "session:" not in method.__doc__
    assert paging.read_list.__doc__.splitlines()[0] in otyspd.Session.read_list.__doc__
    assert files.upload.__doc__.splitlines()[0] in otyspd.Session.upload.__doc__


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"progress": False}, "unknown option.*'progress'"),
        ({"records": 10, "fault_rate": 2}, "cannot start as asked"),
    ],
)
def test_a_bad_sandbox_option_is_a_configuration_error(options, match):
    import otyspd

    with pytest.raises(otyspd.ConfigurationError, match=match):
        otyspd.connect(sandbox=True, **options)


def test_the_sandbox_is_reachable_after_a_plain_import():
    import otyspd

    with otyspd.sandbox.serve(records=20, rate_limit=None) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
