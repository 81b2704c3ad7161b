"""The transport against a scripted OWS (tests/fake_ows.py): no sockets, no waiting."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import requests
import urllib3
from fake_ows import KEY, URL, Clock, FakeOWS, Fault

from otyspd.errors import (
    AccessDenied,
    BadRequest,
    ConfigurationError,
    HTTPStatusError,
    InvalidInput,
    NotFound,
    OwsError,
    ProtocolError,
    RateLimited,
    RequestTimeout,
    TransportError,
)
from otyspd.transport import (
    CallResult,
    Pacer,
    RetryPolicy,
    Transport,
    derive_endpoints,
    error_from_ows,
    is_read,
)

GET = "Otys.Services.CandidateService.getDetail"
ADD = "Otys.Services.CandidateService.add"
MULTI = "Otys.Services.MultiService.execute"


def make(fake: FakeOWS | None = None, *, retries: int = 4, **pacer) -> tuple:
    fake = fake or FakeOWS()
    fake.handlers.setdefault(GET, lambda uid, what=None: {"uid": uid})
    fake.handlers.setdefault(ADD, lambda fields: "new-1")
    clock = Clock()
    transport = Transport(
        URL,
        KEY,
        http=fake.session(),
        retry=RetryPolicy(retries=retries, seed=7),
        pacer=Pacer(pacer.pop("limit", None), clock=clock, sleep=clock.sleep, **pacer),
        sleep=clock.sleep,
    )
    return transport, fake, clock


def failing(status: int, body: str = "", headers: dict | None = None):
    return (status, body.encode(), headers or {})


# ---- envelope and token --------------------------------------------------------------


def test_a_call_logs_in_first_and_sends_the_token_as_the_first_parameter():
    transport, fake, _ = make()

    assert transport.call("CandidateService.getDetail", ["42", {"uid": 1}]) == {
        "uid": "42"
    }

    login, call = fake.requests
    assert login["method"] == "loginByUid" and login["params"] == [KEY]
    assert call["method"] == GET
    assert call["params"] == [transport.token, "42", {"uid": 1}]
    assert call["jsonrpc"] == "2.0" and call["id"] != login["id"]


def test_full_and_short_method_names_send_the_same_request():
    transport, fake, _ = make()
    transport.call("CandidateService.getDetail", ["1"])
    transport.call("Otys.Services.CandidateService.getDetail", ["1"])
    transport.call("Candidate.getDetail", ["1"])
    assert fake.methods()[1:] == [GET, GET, GET]


def test_parameters_json_cannot_carry_are_refused_before_anything_is_sent():
    transport, fake, _ = make()
    with pytest.raises(InvalidInput, match="NaN"):
        transport.call("CandidateService.add", [{"Person": {"age": float("nan")}}])
    with pytest.raises(InvalidInput, match="cannot be sent"):
        transport.call("CandidateService.add", [{"when": object()}])
    assert fake.requests == []


def test_multiservice_and_wraprequest_are_not_called_directly():
    transport, _, _ = make()
    with pytest.raises(InvalidInput, match=r"session\.multi"):
        transport.call("MultiService.execute", [[]])
    with pytest.raises(InvalidInput, match="language"):
        transport.call("LanguageService.wrapRequest", ["en", {}])


@pytest.mark.parametrize(
    ("method", "read"),
    [
        ("CandidateService.getListEx", True),
        ("CandidateService.getDetail", True),
        ("DossierService.getCount", True),
        ("VacancyService.getOptionLists", True),
        ("VacancyService.retrieveSomething", True),
        ("VacancyService.setLanguage", True),
        ("check", True),
        ("CandidateService.add", False),
        ("CandidateService.update", False),
        ("CandidateService.updateEx", False),
        ("CandidateService.delete", False),
        ("CandidateService.generateFoLoginToken", False),
    ],
)
def test_only_reads_count_as_safe_to_repeat(method, read):
    assert is_read(method) is read


# ---- relogin -------------------------------------------------------------------------


def test_an_expired_session_logs_in_again_once_and_repeats_the_call():
    transport, fake, _ = make()
    transport.call("CandidateService.getDetail", ["1"])
    old = transport.token
    fake.expire_all()

    assert transport.call("CandidateService.getDetail", ["2"]) == {"uid": "2"}

    assert fake.logins == 2
    assert transport.token != old
    assert fake.requests[-1]["params"][0] == transport.token


def test_a_relogin_that_does_not_help_raises_access_denied_after_one_relogin():
    transport, fake, _ = make()
    transport.call("CandidateService.getDetail", ["1"])

    def refuse(uid, what=None):
        raise Fault("Access denied; please login again")

    fake.handlers[GET] = refuse

    with pytest.raises(AccessDenied, match="logging in again did not help"):
        transport.call("CandidateService.getDetail", ["1"])
    assert fake.logins == 2
    assert fake.count(GET) == 3


def test_a_write_refused_for_its_session_is_repeated_after_the_relogin():
    transport, fake, _ = make()
    transport.call("CandidateService.getDetail", ["1"])
    fake.expire_all()
    assert transport.call("CandidateService.add", [{"x": 1}]) == "new-1"
    assert fake.count(ADD) == 2 and fake.logins == 2


def test_session_expired_text_of_other_json_rpc_servers_also_triggers_a_relogin():
    transport, fake, _ = make()
    transport.call("CandidateService.getDetail", ["1"])
    fake.script.append(
        lambda p: (
            200,
            {
                "jsonrpc": "2.0",
                "id": 4,
                "error": {"code": -32000, "message": "Session expired"},
            },
        )
    )
    assert transport.call("CandidateService.getDetail", ["3"]) == {"uid": "3"}
    assert fake.logins == 2


def test_ten_threads_meeting_an_expired_session_share_one_relogin():
    transport, fake, _ = make()
    transport.call("CandidateService.getDetail", ["0"])
    stale = transport.token
    fake.expire_all()
    gate = threading.Barrier(10, timeout=5)

    # Hold every request with the stale token until all ten threads were refused.
    def answer(uid, what=None):
        return {"uid": uid}

    fake.handlers[GET] = answer
    original_authorise = fake.authorise

    def authorise(token):
        if token == stale:
            gate.wait()
        original_authorise(token)

    fake.authorise = authorise
    results, errors = [], []

    def worker(i):
        try:
            results.append(transport.call("CandidateService.getDetail", [str(i)]))
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert sorted(r["uid"] for r in results) == [str(i) for i in range(10)]
    assert fake.count("loginByUid") == 2


def test_file_endpoints_refreshing_the_same_refused_token_share_one_login():
    transport, fake, _ = make()
    refused = transport.current_token()
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(transport.refresh_token(refused))
        )
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert fake.count("loginByUid") == 2
    assert len(set(results)) == 1
    assert results[0] != refused


def test_a_bad_key_is_access_denied_at_login():
    transport, fake, _ = make(FakeOWS(key="another-key-entirely"))
    with pytest.raises(AccessDenied, match="API key was refused") as caught:
        transport.call("CandidateService.getDetail", ["1"])
    assert KEY not in str(caught.value)
    assert fake.count("loginByUid") == 1


def test_a_login_error_object_is_access_denied():
    fake = FakeOWS()
    fake.login_answer = Fault("Invalid API key")
    transport, _, _ = make(fake)
    with pytest.raises(AccessDenied, match="login refused: Invalid API key"):
        transport.login()


def test_a_login_answer_that_is_not_a_token_is_a_protocol_error():
    fake = FakeOWS()
    fake.login_answer = {"token": "abc"}
    transport, _, _ = make(fake)
    with pytest.raises(ProtocolError, match="not answer with a session token"):
        transport.login()


def test_a_failed_relogin_is_access_denied():
    transport, fake, _ = make()
    transport.call("CandidateService.getDetail", ["1"])
    fake.expire_all()
    fake.login_answer = False
    with pytest.raises(AccessDenied, match="refused"):
        transport.call("CandidateService.getDetail", ["1"])


def test_logout_is_quiet_on_a_dead_session_and_when_repeated():
    transport, fake, _ = make()
    transport.call("CandidateService.getDetail", ["1"])
    fake.expire_all()
    transport.logout()
    transport.logout()
    assert transport.token is None
    assert fake.count("logout") == 1
    assert fake.logins == 1


# ---- retries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        failing(500, "<html><title>500 Internal Server Error</title></html>"),
        failing(502),
        failing(503),
        failing(200, ""),
        failing(200, '{"result": {"uid": "1"'),
        (200, {"result": None}, {}),
        requests.ConnectionError("connection reset by peer"),
        requests.ReadTimeout("read timed out"),
    ],
    ids=["html-500", "502", "503", "empty", "truncated", "null", "reset", "timeout"],
)
def test_a_read_is_retried_with_backoff_after_a_transient_failure(failure):
    transport, fake, clock = make()
    transport.login()
    fake.script.extend([failure, failure])

    assert transport.call("CandidateService.getDetail", ["5"]) == {"uid": "5"}

    assert fake.count(GET) == 3
    first, second = clock.sleeps
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0


def test_the_backoff_grows_exponentially_up_to_its_ceiling_with_jitter():
    policy = RetryPolicy(backoff=1.0, backoff_max=8.0, seed=3)
    waits = [policy.delay(attempt) for attempt in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert len(set(waits)) == len(waits)


def test_a_read_gives_up_after_its_retries_and_says_how_often_it_tried():
    transport, fake, clock = make(retries=2)
    transport.login()
    fake.script.extend([failing(503)] * 3)
    with pytest.raises(
        HTTPStatusError, match=r"HTTP 503.*gave up after 3 attempts"
    ) as caught:
        transport.call("CandidateService.getDetail", ["5"])
    assert caught.value.status == 503
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (failing(500), HTTPStatusError),
        (failing(200, "<html>oops</html>"), ProtocolError),
        (requests.ConnectionError("connection reset by peer"), TransportError),
        (requests.ReadTimeout("read timed out"), RequestTimeout),
    ],
    ids=["500", "html", "reset", "timeout"],
)
def test_an_add_is_never_sent_twice_after_a_failure_with_unknown_outcome(
    failure, error
):
    transport, fake, clock = make()
    transport.login()
    fake.script.append(failure)
    with pytest.raises(error, match="not sent again: its outcome is unknown"):
        transport.call("CandidateService.add", [{"Person": {"lastName": "X"}}])
    assert fake.count(ADD) == 1
    assert clock.sleeps == []


def test_an_add_whose_connection_was_refused_is_sent_again_since_nothing_arrived():
    transport, fake, _ = make()
    transport.login()
    refused = requests.ConnectionError(
        urllib3.exceptions.MaxRetryError(
            None, "/", urllib3.exceptions.NewConnectionError(None, "refused")
        )
    )
    fake.script.append(refused)
    assert transport.call("CandidateService.add", [{}]) == "new-1"
    assert fake.count(ADD) == 2


def test_a_write_marked_idempotent_is_retried():
    transport, fake, _ = make()
    transport.login()
    fake.script.append(failing(502))
    assert transport.call("CandidateService.add", [{}], idempotent=True) == "new-1"
    assert fake.count(ADD) == 2


def test_an_http_4xx_is_not_retried():
    transport, fake, clock = make()
    transport.login()
    fake.script.append(
        failing(
            404, "<html><title>Not Found</title></html>", {"Content-Type": "text/html"}
        )
    )
    with pytest.raises(HTTPStatusError, match=r"HTTP 404.*HTML page \('Not Found'\)"):
        transport.call("CandidateService.getDetail", ["1"])
    assert clock.sleeps == []


def test_retry_after_is_honoured_on_429_even_for_an_add():
    transport, fake, clock = make()
    transport.login()
    fake.script.append(failing(429, "", {"Retry-After": "7"}))
    assert transport.call("CandidateService.add", [{}]) == "new-1"
    assert clock.sleeps == [7.0]
    assert fake.count(ADD) == 2


def test_retry_after_is_honoured_on_503():
    transport, fake, clock = make()
    transport.login()
    fake.script.append(failing(503, "", {"Retry-After": "3"}))
    transport.call("CandidateService.getDetail", ["1"])
    assert clock.sleeps == [3.0]


def test_a_429_without_retry_after_waits_out_the_remaining_timeframe():
    transport, fake, clock = make()
    transport.login()
    fake.script.append(failing(429, "", {"X-Orl-Remaining-Timeframe": "4"}))
    transport.call("CandidateService.getDetail", ["1"])
    assert clock.sleeps == [5.0]


def test_a_retry_after_longer_than_max_wait_is_raised_at_once():
    transport, fake, clock = make()
    transport.login()
    fake.script.append(failing(429, "", {"Retry-After": "3600"}))
    with pytest.raises(RateLimited, match="longer than max_wait") as caught:
        transport.call("CandidateService.getDetail", ["1"])
    assert caught.value.retry_after == 3600
    assert clock.sleeps == []


def test_a_429_makes_every_thread_of_the_session_wait():
    transport, fake, clock = make(limit=350)
    transport.login()
    fake.script.append(failing(429, "", {"Retry-After": "10"}))
    transport.call("CandidateService.getDetail", ["1"])
    assert transport.pacer._paused_until == pytest.approx(clock.now)


# ---- malformed answers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "match"),
    [
        (500, "<!DOCTYPE html><html><head><title>Fatal error</title></head></html>",
         {"Content-Type": "text/html"}, HTTPStatusError, r"HTTP 500.*HTML page \('Fatal error'\)"),
        (200, "<html><body>Maintenance</body></html>", {}, ProtocolError, "HTML page"),
        (200, "", {}, ProtocolError, "empty body"),
        (200, '{"result": [{"uid": "1"}, {"ui', {}, ProtocolError, "JSON cut off"),
        (200, '{"result": null, "id": 1}', {}, ProtocolError, "result null where a value"),
        (200, '[{"uid": "1"}]', {}, ProtocolError, "JSON list instead of a JSON-RPC object"),
        (200, '{"id": 1}', {}, ProtocolError, "neither 'result' nor 'error'"),
        (200, '{"error": {"code": 3}, "id": 1}', {}, ProtocolError, "error object without a message"),
        (200, "Fatal error: out of memory", {}, ProtocolError, "not JSON: 'Fatal error"),
    ],
    ids=["html-500", "html-200", "empty", "truncated", "null", "array", "no-result",
         "error-no-message", "text"],
)  # fmt: skip
def test_every_malformed_answer_is_a_typed_error_that_shows_what_came_back(
    status, body, headers, error, match
):
    transport, fake, _ = make(retries=0)
    transport.login()
    fake.script.append((status, body.encode(), headers))
    with pytest.raises(error, match=match) as caught:
        transport.call("CandidateService.getDetail", ["1"])
    assert caught.value.method == GET
    assert "CandidateService.getDetail" in str(caught.value)


def test_an_error_object_without_code_is_still_an_ows_error_with_its_message():
    transport, fake, _ = make()
    transport.login()
    fake.script.append((200, {"error": {"message": "Something went wrong"}, "id": 1}))
    with pytest.raises(OwsError, match=r"Something went wrong$") as caught:
        transport.call("CandidateService.getDetail", ["1"])
    assert caught.value.code is None
    assert caught.value.ows_message == "Something went wrong"


def test_a_null_result_of_a_write_is_accepted():
    transport, fake, _ = make()
    fake.handlers["Otys.Services.CandidateService.update"] = lambda uid, fields: None
    assert transport.call("CandidateService.update", ["1", {"x": 1}]) is None


def test_secrets_echoed_in_a_broken_body_do_not_reach_the_error():
    transport, fake, _ = make(retries=0)
    token = transport.login()
    fake.script.append((200, f"<html>session {token} key {KEY}</html>".encode(), {}))
    with pytest.raises(ProtocolError) as caught:
        transport.call("CandidateService.getDetail", ["1"])
    text = str(caught.value) + repr(caught.value) + str(caught.value.excerpt)
    assert token not in text and KEY not in text
    assert "***" in text


@pytest.mark.parametrize(
    ("message", "code", "kind"),
    [
        ("Access denied; please login first", 0, AccessDenied),
        ("Access denied; please login again", 0, AccessDenied),
        ("Record not found", 0, NotFound),
        ("Candidate 123 does not exist", 0, NotFound),
        ("Field 'Person.foo' is not updatable", 0, BadRequest),
        ("Unknown field fooBar in what", 0, BadRequest),
        ("Invalid condition operator XX", 0, BadRequest),
        ("Method not found", -32601, BadRequest),
        ("Something broke on our side", 0, OwsError),
    ],
)
def test_server_messages_map_to_the_error_tree(message, code, kind):
    error = error_from_ows(message, code, GET)
    assert type(error) is kind
    assert error.ows_message == message and error.code == code and error.method == GET


# ---- MultiService --------------------------------------------------------------------


def test_multi_with_a_list_returns_a_list_of_results_in_order_with_errors_apart():
    transport, fake, _ = make()

    def detail(uid, what=None):
        if uid == "404":
            raise Fault("Record not found")
        return {"uid": uid}

    fake.handlers[GET] = detail
    results = transport.multi(
        [
            ("CandidateService.getDetail", ["1", {"uid": 1}]),
            ("CandidateService.getDetail", ["404", {"uid": 1}]),
            ("Otys.Services.CandidateService.add", [{"Person": {}}]),
        ]
    )

    assert [type(r) for r in results] == [CallResult] * 3
    assert results[0].ok and results[0].data == {"uid": "1"}
    assert not results[1].ok and isinstance(results[1].error, NotFound)
    assert results[1].error.method == GET
    assert results[2].unwrap() == "new-1"
    with pytest.raises(NotFound, match="Record not found"):
        results[1].unwrap()

    # One request; the token inside each call's args, none at the top.
    (batch,) = [r for r in fake.requests if r["method"] == MULTI]
    calls = batch["params"][0]
    assert [c["args"][0] for c in calls] == [transport.token] * 3
    assert calls[0] == {"method": GET, "args": [transport.token, "1", {"uid": 1}]}
    assert len(batch["params"]) == 1


def test_multi_with_a_dict_returns_the_same_keys():
    transport, fake, _ = make()
    results = transport.multi(
        {
            "first": ("CandidateService.getDetail", ["1"]),
            "broken": ("CandidateService.nothing", []),
        }
    )
    assert list(results) == ["first", "broken"]
    assert results["first"].data == {"uid": "1"}
    assert isinstance(results["broken"].error, OwsError)
    sent = fake.requests[-1]["params"][0]
    assert set(sent) == {"first", "broken"}


def test_a_long_multi_is_split_into_chunks_and_keeps_the_order():
    transport, fake, _ = make()
    calls = [("CandidateService.getDetail", [str(i)]) for i in range(7)]
    results = transport.multi(calls, chunk=3)
    assert [r.data["uid"] for r in results] == [str(i) for i in range(7)]
    assert [len(r["params"][0]) for r in fake.requests if r["method"] == MULTI] == [
        3,
        3,
        1,
    ]


def test_malformed_multi_elements_get_their_own_error_and_the_rest_is_sent():
    transport, fake, _ = make()
    results = transport.multi(
        [
            ("CandidateService.getDetail", ["1"]),
            "CandidateService.getDetail",
            ("not a method", ["1"]),
            ("CandidateService.getDetail", "1"),
            ("CandidateService.add", [{"x": float("inf")}]),
            ("CandidateService.getDetail", ["2"]),
        ]
    )
    assert [r.ok for r in results] == [True, False, False, False, False, True]
    assert all(isinstance(r.error, InvalidInput) for r in results[1:5])
    assert "call 1 must be a (method, params) pair" in str(results[1].error)
    assert "NaN or infinity" in str(results[4].error)
    assert len(fake.requests[-1]["params"][0]) == 2


def test_multi_answer_elements_that_make_no_sense_become_protocol_errors():
    transport, fake, _ = make()
    transport.login()
    fake.script.append(
        (200, {"result": [{"status": "success", "data": {"uid": "1"}}, "garbage",
                          {"status": "success"}], "id": 1})
    )  # fmt: skip
    results = transport.multi(
        [("CandidateService.getDetail", [str(i)]) for i in range(3)]
    )
    assert results[0].ok
    assert isinstance(results[1].error, ProtocolError)
    assert "not a status object" in str(results[1].error)
    assert isinstance(results[2].error, ProtocolError)
    assert "without data" in str(results[2].error)


def test_a_multi_answer_that_does_not_match_the_calls_is_a_protocol_error():
    transport, fake, _ = make(retries=0)
    transport.login()
    fake.script.append((200, {"result": [{"status": "success", "data": 1}], "id": 1}))
    with pytest.raises(ProtocolError, match="does not match the 2 calls"):
        transport.multi([("CandidateService.getDetail", ["1"])] * 2)


def test_a_multi_keyed_by_digits_accepts_the_list_php_makes_of_it():
    transport, fake, _ = make()
    transport.login()
    fake.script.append(
        (
            200,
            {
                "result": [
                    {"status": "success", "data": "a"},
                    {"status": "success", "data": "b"},
                ]
            },
        )
    )
    results = transport.multi({"0": ("X.getA", []), "1": ("X.getB", [])})
    assert {k: r.data for k, r in results.items()} == {"0": "a", "1": "b"}


def test_calls_of_a_multi_refused_for_the_session_are_repeated_once_after_one_relogin():
    transport, fake, _ = make()
    transport.login()
    stale = transport.token
    refused_once = {"2"}

    def detail(uid, what=None):
        if uid in refused_once:
            refused_once.discard(uid)
            raise Fault("Access denied; please login again")
        return {"uid": uid}

    fake.handlers[GET] = detail
    results = transport.multi(
        [("CandidateService.getDetail", [str(i)]) for i in range(4)]
    )

    assert [r.data["uid"] for r in results] == ["0", "1", "2", "3"]
    assert fake.logins == 2
    batches = [r["params"][0] for r in fake.requests if r["method"] == MULTI]
    assert [len(b) for b in batches] == [4, 1]
    assert batches[1][0]["args"] == [transport.token, "2"]
    assert transport.token != stale


def test_a_multi_call_refused_again_after_relogin_stays_access_denied():
    transport, fake, _ = make()

    def detail(uid, what=None):
        if uid == "2":
            raise Fault("Access denied; please login again")
        return {"uid": uid}

    fake.handlers[GET] = detail
    results = transport.multi(
        [("CandidateService.getDetail", [str(i)]) for i in range(3)]
    )
    assert [r.ok for r in results] == [True, True, False]
    assert isinstance(results[2].error, AccessDenied)
    assert fake.logins == 2


def test_a_multi_of_reads_is_retried_and_one_with_a_write_is_not():
    transport, fake, _ = make()
    transport.login()
    fake.script.append(failing(500))
    reads = transport.multi([("CandidateService.getDetail", ["1"])])
    assert reads[0].ok and fake.count(MULTI) == 2

    fake.script.append(failing(500))
    with pytest.raises(HTTPStatusError, match="outcome is unknown"):
        transport.multi(
            [("CandidateService.getDetail", ["1"]), ("CandidateService.add", [{}])]
        )
    assert fake.count(MULTI) == 3

    fake.script.append(failing(500))
    writes = transport.multi([("CandidateService.add", [{}])], idempotent=True)
    assert writes[0].data == "new-1"


def test_bad_multi_containers_are_refused_before_sending():
    transport, fake, _ = make()
    with pytest.raises(InvalidInput, match="list of"):
        transport.multi("CandidateService.getDetail")
    with pytest.raises(InvalidInput, match="chunk"):
        transport.multi([], chunk=0)
    assert fake.requests == []
    assert transport.multi([]) == [] and transport.multi({}) == {}


# ---- content language ----------------------------------------------------------------


def test_a_call_in_a_language_is_wrapped_with_the_token_inside_the_inner_request():
    transport, fake, _ = make()
    assert transport.call(
        "CandidateService.getDetail", ["9", {"uid": 1}], language="en"
    ) == {"uid": "9"}
    outer = fake.requests[-1]
    assert outer["method"] == "Otys.Services.LanguageService.wrapRequest"
    lang, inner = outer["params"]
    assert lang == "en"
    assert inner["jsonrpc"] == "2.0" and isinstance(inner["id"], int)
    assert inner["method"] == GET
    assert inner["params"] == [transport.token, "9", {"uid": 1}]


def test_a_multi_in_a_language_wraps_each_call_not_the_batch():
    transport, fake, _ = make()
    results = transport.multi(
        [("CandidateService.getDetail", ["1"])] * 2, language="de"
    )
    assert [r.data for r in results] == [{"uid": "1"}] * 2
    outer = fake.requests[-1]
    assert outer["method"] == MULTI
    for call in outer["params"][0]:
        assert call["method"] == "Otys.Services.LanguageService.wrapRequest"
        assert call["args"][0] == "de"
        assert call["args"][1]["params"][0] == transport.token


def test_login_check_and_set_language_are_never_wrapped():
    transport, fake, _ = make()
    fake.handlers["Otys.Services.VacancyService.setLanguage"] = lambda code: True
    transport.call("check", [], language="en")
    transport.call("VacancyService.setLanguage", ["en"], language="en")
    assert fake.methods() == [
        "loginByUid",
        "check",
        "Otys.Services.VacancyService.setLanguage",
    ]


def test_an_expired_session_inside_a_wrapped_call_is_renewed_in_the_inner_request():
    transport, fake, _ = make()
    transport.login()
    fake.expire_all()
    transport.call("CandidateService.getDetail", ["1"], language="en")
    assert fake.requests[-1]["params"][1]["params"][0] == transport.token
    assert fake.logins == 2


# ---- pacing --------------------------------------------------------------------------


def test_the_pacer_keeps_every_sixty_seconds_under_the_limit():
    clock = Clock()
    pacer = Pacer(5, 60.0, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(17):
        pacer.acquire()
        sent.append(clock.now)
    for i, start in enumerate(sent):
        assert sum(1 for t in sent[i:] if t < start + 60.0) <= 5
    assert sent[-1] - sent[0] >= 180.0


def test_the_transport_paces_its_requests_with_the_injected_clock():
    transport, fake, clock = make(limit=3)
    for i in range(7):
        transport.call("CandidateService.getDetail", [str(i)])
    assert len(fake.requests) == 8
    assert clock.now - 1000.0 >= 120.0


@pytest.mark.parametrize("remaining", ["0", "1"])
def test_no_requests_remaining_pause_until_the_server_window_resets(remaining):
    clock = Clock()
    pacer = Pacer(350, clock=clock, sleep=clock.sleep)
    pacer.acquire()
    pacer.observe(
        {"X-Orl-Requests-Remaining": remaining, "X-Orl-Remaining-Timeframe": "12"}
    )
    assert pacer.acquire() == pytest.approx(12.0)


def test_running_low_spreads_the_remaining_requests_over_the_timeframe():
    clock = Clock()
    pacer = Pacer(350, clock=clock, sleep=clock.sleep)
    pacer.acquire()
    pacer.observe({"X-Orl-Requests-Remaining": "10", "X-Orl-Remaining-Timeframe": "20"})
    pacer.acquire()
    assert clock.sleeps == [pytest.approx(2.0)]
    pacer.observe(
        {"X-Orl-Requests-Remaining": "300", "X-Orl-Remaining-Timeframe": "20"}
    )
    pacer.acquire()
    assert len(clock.sleeps) == 1


def test_the_transport_reads_the_rate_headers_of_every_answer():
    fake = FakeOWS()
    fake.headers = {"X-Orl-Requests-Remaining": "1", "X-Orl-Remaining-Timeframe": "30"}
    transport, _, clock = make(fake, limit=350)
    transport.call("CandidateService.getDetail", ["1"])
    assert clock.sleeps == [pytest.approx(30.0)]


def test_a_bad_rate_limit_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="rate_limit"):
        Pacer(-1)


# ---- endpoints, logging, reprs -------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "files", "download"),
    [
        ("https://ows.otys.nl/jservice.php", "https://ows.otys.nl/fileService.php",
         "https://ows.otys.nl/fileServiceDownload"),
        ("http://127.0.0.1:8123/jservice.php", "http://127.0.0.1:8123/fileService.php",
         "http://127.0.0.1:8123/fileServiceDownload"),
        ("https://x.example/api/v1/jservice.php?remark=1", "https://x.example/api/v1/fileService.php",
         "https://x.example/api/v1/fileServiceDownload"),
        ("https://x.example/api/", "https://x.example/api/fileService.php",
         "https://x.example/api/fileServiceDownload"),
    ],
)  # fmt: skip
def test_file_endpoints_sit_beside_the_json_rpc_endpoint(url, files, download):
    endpoints = derive_endpoints(url)
    assert endpoints.file_service_url == files
    assert endpoints.download_url == download


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ows.otys.nl/jservice.php",
        "ftp://host/x",
        "https:///x",
        "http://h:99999/",
        5,
    ],
)
def test_a_malformed_url_is_a_configuration_error(url):
    with pytest.raises(ConfigurationError, match="url"):
        derive_endpoints(url)


def test_a_url_with_a_password_is_refused_without_showing_it():
    with pytest.raises(ConfigurationError, match="user name or password") as caught:
        derive_endpoints("https://me:hunter2secret@ows.example/jservice.php")
    assert "hunter2secret" not in str(caught.value)


def test_one_debug_line_per_call_and_no_secret_in_any_log_record(caplog):
    transport, fake, _ = make()
    with caplog.at_level(logging.DEBUG):
        token = transport.login()
        transport.call("CandidateService.getDetail", ["1"])
        fake.expire_all()
        transport.call("CandidateService.getDetail", ["2"], language="en")
        fake.script.append(failing(503))
        transport.multi([("CandidateService.getDetail", ["3"])])
        transport.logout()

    lines = [r.getMessage() for r in caplog.records if r.name == "otyspd.transport"]
    assert any(
        line.startswith("CandidateService.getDetail -> ok (200) in ") for line in lines
    )
    assert any("Access denied; please login again" in line for line in lines)
    assert any("MultiService.execute[1 calls] -> HTTP 503" in line for line in lines)
    every = " ".join(r.getMessage() + str(r.args) for r in caplog.records)
    for secret in (KEY, token, transport.token or token):
        assert secret not in every


def test_the_transport_repr_shows_the_url_and_no_secret():
    transport, _, _ = make()
    token = transport.login()
    text = repr(transport)
    assert URL in text and "logged in" in text
    assert KEY not in text and token not in text


def test_a_missing_api_key_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="OTYS_API_KEY"):
        Transport(URL, "")


# ---- over real HTTP on 127.0.0.1 -----------------------------------------------------


def test_a_closed_port_is_a_transport_error_after_the_read_retries():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = []
    transport = Transport(
        f"http://127.0.0.1:{port}/jservice.php",
        KEY,
        retry=RetryPolicy(retries=2, seed=1),
        pacer=Pacer(None),
        sleep=sleeps.append,
    )
    started = time.monotonic()
    with pytest.raises(TransportError, match="connection failed"):
        transport.login()
    assert len(sleeps) == 2
    assert time.monotonic() - started < 5
