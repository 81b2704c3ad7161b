"""The sandbox's knobs: latency, limits, expiry, serialisation, faults, churn, storage."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import RawOws

LIST = {"what": {"uid": 1}, "limit": 5, "getTotalCount": 1}


def _client(srv) -> RawOws:
    client = RawOws(srv)
    client.login()
    return client


def test_latency_delays_every_request(make_sandbox):
    srv = make_sandbox(latency=0.2)
    client = _client(srv)
    started = time.perf_counter()
    client.result("CandidateService.getList", LIST)
    assert time.perf_counter() - started >= 0.2
    srv.configure(latency=0.0)
    started = time.perf_counter()
    client.result("CandidateService.getList", LIST)
    client.close()
    assert time.perf_counter() - started < 0.2


def test_rate_limit_answers_429_with_retry_after_and_orl_headers(make_sandbox):
    srv = make_sandbox(rate_limit=3)
    client = _client(srv)  # the login is request 1
    body = {
        "method": "CandidateService.getList",
        "params": [client.token, LIST],
        "id": 1,
    }
    ok = client.post(body)
    assert ok.status_code == 200
    assert (
        ok.headers["X-Orl-Limit-Blocked"] == "0"
        and ok.headers["X-Orl-Requests-Remaining"] == "1"
    )
    assert 0 < int(ok.headers["X-Orl-Remaining-Timeframe"]) <= 60
    client.post(body)
    refused = client.post(body)
    client.close()
    assert refused.status_code == 429
    assert (
        refused.headers["X-Orl-Limit-Blocked"] == "1"
        and refused.headers["X-Orl-Requests-Remaining"] == "0"
    )
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert srv.stats["rate_limited"] == 1


def test_the_rate_window_slides_and_none_switches_the_limit_off(make_sandbox):
    srv = make_sandbox(rate_limit=2, rate_window=0.5)
    client = _client(srv)
    body = {"method": "check", "params": [client.token], "id": 1}
    assert client.post(body).status_code == 200
    assert client.post(body).status_code == 429
    time.sleep(0.6)
    assert client.post(body).status_code == 200
    srv.configure(rate_limit=None)
    answers = [client.post(body) for _ in range(5)]
    client.close()
    assert all(
        a.status_code == 200 and "X-Orl-Limit-Blocked" not in a.headers for a in answers
    )


def test_session_lifetime_expires_an_idle_session(make_sandbox):
    srv = make_sandbox(session_lifetime=0.3)
    client = _client(srv)
    assert "result" in client.call("check", client.token)
    time.sleep(0.45)
    answer = client.call("check", client.token)
    assert answer["error"]["message"] == "Access denied; please login again"
    client.login()
    assert "result" in client.call("check", client.token)
    client.close()


def test_expire_after_calls_expires_the_session_after_n_calls(make_sandbox):
    srv = make_sandbox(expire_after_calls=3)
    client = _client(srv)
    answers = [
        client.call("CandidateService.getListEx", client.token, LIST) for _ in range(4)
    ]
    assert ["result" in a for a in answers] == [True, True, True, False]
    assert answers[3]["error"]["message"] == "Access denied; please login again"
    client.login()
    assert "result" in client.call("check", client.token)
    client.close()


def _timed_pair(srv, same_session: bool) -> float:
    first, second = _client(srv), _client(srv)
    if same_session:
        second.token = first.token
    threads = [
        threading.Thread(target=c.result, args=("CandidateService.getList", LIST))
        for c in (first, second)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    first.close()
    second.close()
    return elapsed


def test_requests_of_one_session_are_served_one_at_a_time(make_sandbox):
    srv = make_sandbox(work=0.3)
    assert _timed_pair(srv, same_session=True) >= 0.6
    assert _timed_pair(srv, same_session=False) < 0.55
    srv.configure(serialize_sessions=False)
    assert _timed_pair(srv, same_session=True) < 0.55


def test_latency_is_network_time_that_one_sessions_requests_wait_out_together(
    make_sandbox,
):
    srv = make_sandbox(latency=0.3)
    assert _timed_pair(srv, same_session=True) < 0.55


def _outcomes(srv, n: int = 12) -> list:
    client = _client(srv)
    body = {
        "method": "CandidateService.getList",
        "params": [client.token, LIST],
        "id": 1,
    }
    seen = []
    for _ in range(n):
        try:
            response = client.post(body)
        except requests.ConnectionError:
            seen.append("drop")
            continue
        try:
            json.loads(response.content)
            seen.append(response.status_code)
        except ValueError:
            seen.append(f"{response.status_code}-malformed")
    client.close()
    return seen


def test_faults_are_deterministic_given_the_seed(make_sandbox):
    knobs = {
        "fault_rate": 0.25,
        "drop_rate": 0.25,
        "malformed_rate": 0.25,
        "fault_methods": ["CandidateService.getList"],
    }
    one = _outcomes(make_sandbox(fault_seed=3, **knobs))
    two = _outcomes(make_sandbox(fault_seed=3, **knobs))
    other = _outcomes(make_sandbox(fault_seed=4, **knobs))
    assert one == two != other
    assert {"drop", 200} <= set(one) and any(str(o).startswith("5") for o in one)


def test_fault_rate_gives_5xx_with_an_html_body(make_sandbox):
    srv = make_sandbox(fault_rate=1.0, fault_methods=["CandidateService.getList"])
    client = _client(srv)
    response = client.post(
        {"method": "CandidateService.getList", "params": [client.token, LIST], "id": 1}
    )
    client.close()
    assert response.status_code in (500, 502, 503)
    assert (
        response.headers["Content-Type"].startswith("text/html")
        and "<html>" in response.text
    )


def test_drop_rate_closes_the_connection_without_an_answer(make_sandbox):
    srv = make_sandbox(drop_rate=1.0, fault_methods=["check"])
    client = _client(srv)
    with pytest.raises(requests.ConnectionError):
        client.post({"method": "check", "params": [client.token], "id": 1})
    client.close()


def test_malformed_rate_gives_http_200_with_a_body_that_is_not_json(make_sandbox):
    srv = make_sandbox(malformed_rate=1.0, fault_methods=["CandidateService.getListEx"])
    client = _client(srv)
    for _ in range(4):
        response = client.post(
            {
                "method": "CandidateService.getListEx",
                "params": [client.token, LIST],
                "id": 1,
            }
        )
        assert response.status_code == 200
        with pytest.raises(ValueError):
            json.loads(response.content)
    client.close()


@pytest.mark.parametrize("after", [False, True])
def test_a_faulted_write_is_applied_only_with_fault_after_write(make_sandbox, after):
    srv = make_sandbox(
        fault_rate=1.0, fault_methods=["CandidateService.add"], fault_after_write=after
    )
    client = _client(srv)
    before = srv.store.one('SELECT COUNT(*) FROM "CandidateService"')[0]
    response = client.post(
        {
            "method": "CandidateService.add",
            "params": [client.token, {"Person": {"lastName": "Fout"}}],
            "id": 1,
        }
    )
    client.close()
    assert response.status_code >= 500
    written = srv.store.one(
        'SELECT COUNT(*) FROM "CandidateService" WHERE "Person.lastName" = ?', ("Fout",)
    )[0]
    assert written == (1 if after else 0)
    assert (
        srv.store.one('SELECT COUNT(*) FROM "CandidateService"')[0] == before + written
    )


def test_churn_changes_the_data_after_each_page(make_sandbox):
    def totals(srv) -> list:
        client = _client(srv)
        seen = [
            client.result("CandidateService.getListEx", {**LIST, "offset": i * 5})[
                "totalCount"
            ]
            for i in range(3)
        ]
        uids = [
            r[0]
            for r in srv.store.all('SELECT uid FROM "CandidateService" ORDER BY _id')
        ]
        client.close()
        return [seen, uids]

    srv = make_sandbox(churn={"add": 3, "change": 2, "delete": 1}, fault_seed=9)
    first = totals(srv)
    assert first[0] == [300, 302, 304]
    assert (
        totals(make_sandbox(churn={"add": 3, "change": 2, "delete": 1}, fault_seed=9))[
            1
        ]
        == first[1]
    )
    assert srv.stats["churn"] == 3


def test_configure_refuses_unknown_knobs_and_bad_rates(sandbox):
    with pytest.raises(TypeError, match="fault_ratio"):
        sandbox.configure(fault_ratio=0.1)
    with pytest.raises(ValueError, match="fault_rate"):
        sandbox.configure(fault_rate=2)
    with pytest.raises(ValueError, match="churn"):
        sandbox.configure(churn={"insert": 1})


@pytest.mark.parametrize("count", ["2", -1, 1.5, True])
def test_configure_refuses_a_churn_count_that_is_not_a_whole_number(sandbox, count):
    with pytest.raises(ValueError, match="counts >= 0"):
        sandbox.configure(churn={"add": count})
    assert sandbox.knobs["churn"] is None


def test_a_database_file_survives_a_restart_but_its_sessions_do_not(
    make_sandbox, tmp_path
):
    path = str(tmp_path / "tenant.sqlite")
    first = make_sandbox(db=path, api_key="k-123456")
    client = _client(first)
    uid = client.result("CandidateService.add", {"Person": {"lastName": "Blijvend"}})
    token = client.token
    client.close()
    first.stop()

    second = make_sandbox(db=path, api_key="k-123456", records=50)
    again = RawOws(second)
    assert (
        again.call("check", token)["error"]["message"]
        == "Access denied; please login first"
    )
    again.login()
    assert again.result(
        "CandidateService.getDetail", uid, {"Person": {"lastName": 1}}
    ) == {"Person": {"lastName": "Blijvend"}}
    assert (
        second.store.one('SELECT COUNT(*) FROM "CandidateService"')[0] == 301
    )  # not reseeded with 50
    again.close()
    assert b"k-123456" not in (tmp_path / "tenant.sqlite").read_bytes()


def test_edit_and_get_act_as_a_colleague_without_http(sandbox):
    uid = sandbox.store.one('SELECT uid FROM "CandidateService" LIMIT 1')[0]
    before = sandbox.get("CandidateService", uid)
    sandbox.edit(
        "Candidate",
        uid,
        {
            "Person": {"phoneMobile": "0612345678"},
            "entryDateTime": "2020-02-02 10:00:00",
        },
    )
    after = sandbox.get("CandidateService", uid)
    assert after["Person"]["phoneMobile"] == "0612345678"
    assert (
        after["entryDateTime"] == "2020-02-02 10:00:00"
    )  # read-only over HTTP, not for a colleague
    with pytest.raises(Exception, match="age"):
        sandbox.edit("CandidateService", uid, {"age": 40})
    assert after["lastModified"] > before["lastModified"]
    assert sandbox.stats["requests"] == 0


def test_stats_count_requests_calls_and_logins(sandbox):
    client = _client(sandbox)
    client.result("CandidateService.getList", LIST)
    client.call("loginByUid", "wrong")
    client.close()
    stats = sandbox.stats
    assert (
        stats["requests"] == 3 and stats["logins"] == 1 and stats["failed_logins"] == 1
    )
    assert stats["calls"]["CandidateService.getList"] == 1


def test_a_refused_username_login_counts_as_a_failed_login(sandbox):
    client = _client(sandbox)
    assert client.call("login", sandbox.username, "not the password")["result"] is False
    assert client.call("login", sandbox.username, sandbox.password)["result"]
    client.close()
    stats = sandbox.stats
    assert stats["failed_logins"] == 1 and stats["logins"] == 2


def test_stop_closes_the_port_and_the_context_manager_stops(make_sandbox):
    from otyspd.sandbox import serve

    with serve(records=50) as srv:
        client = _client(srv)
        client.call("check", client.token)
        port = srv.port
    client.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert srv.url.startswith("http://127.0.0.1:")


def test_the_cli_serves_until_interrupted(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "otyspd.cli",
        "sandbox",
        "--port",
        "0",
        "--api-key",
        "cli-key-1",
        "--records",
        "50",
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        url = lines[1].split(" at ")[1].strip()
        assert lines[2].split()[-1] == "cli-key-1"
        answer = requests.post(
            url,
            json={"method": "loginByUid", "params": ["cli-key-1"], "id": 1},
            timeout=30,
        ).json()
        assert isinstance(answer["result"], str)
    finally:
        proc.send_signal(2)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out, err


def test_a_refused_configure_leaves_every_knob_as_it_was(sandbox):
    sandbox.configure(fault_rate=0.5, fault_seed=3)
    before = dict(sandbox.knobs)
    with pytest.raises(ValueError, match="must not exceed 1"):
        sandbox.configure(drop_rate=0.6, latency=0.2)
    assert sandbox.knobs == before
