"""Hashed portal links: input checks before any call, the link's shape, secrecy."""

from __future__ import annotations

import logging

import pytest

from otyspd import portal
from otyspd.errors import InvalidInput, ProtocolError, redact


class FakeSession:
    """Answers OCDService.createToken with a fixed token and records the calls."""

    def __init__(self, token: object = "tok123abc456") -> None:
        self.token = token
        self.calls: list[tuple] = []

    def call(self, method: str, *params: object) -> object:
        self.calls.append((method, params))
        return self.token


def test_link_carries_the_token_on_the_url_host_and_sends_the_documented_params():
    session = FakeSession()

    link = portal.portal_link(
        session, "wu-1", "https://Portal.Example.com/page/x?a=1", 3
    )

    assert link == (
        "https://portal.example.com/index.php/page/ocdapp/bb/1/command/"
        "loginandredirect/token/tok123abc456"
    )
    assert session.calls == [
        (
            "OCDService.createToken",
            ("wu-1", {"url": "https://Portal.Example.com/page/x?a=1"}, 3),
        )
    ]


def test_domain_given_explicitly_must_match_the_url_and_keeps_a_port():
    session = FakeSession()

    link = portal.portal_link(
        session,
        "wu-1",
        "http://portal.example.com:8443/p",
        domain="portal.example.com:8443",
    )

    assert link.startswith("https://portal.example.com:8443/index.php/")


def test_token_with_url_characters_is_quoted_and_never_shown_in_errors():
    session = FakeSession("ab/cd?ef")

    link = portal.portal_link(session, "wu-1", "https://p.example.com/")

    assert link.endswith("/token/ab%2Fcd%3Fef")
    assert "ab/cd?ef" not in redact("leaked ab/cd?ef")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"webuser_uid": ""}, "webuser_uid"),
        ({"webuser_uid": "   "}, "webuser_uid"),
        ({"webuser_uid": None}, "webuser_uid"),
        ({"url": "ftp://p.example.com/x"}, "not an http or https"),
        ({"url": "javascript:alert(1)"}, "not an http or https"),
        ({"url": "p.example.com/x"}, "not an http or https"),
        ({"url": "https://"}, "no host"),
        ({"url": "https://p.example.com/a b"}, "spaces"),
        ({"url": "https://user:pw@p.example.com/"}, "user name or password"),
        (
            {"url": "https://www.google.com/", "domain": "p.example.com"},
            "not on the portal's domain",
        ),
        ({"domain": "evil.example.com"}, "not on the portal's domain"),
        ({"domain": "https://p.example.com"}, "bare host name"),
        ({"days": 0}, "positive whole number"),
        ({"days": -3}, "positive whole number"),
        ({"days": 1.5}, "positive whole number"),
        ({"days": "7"}, "positive whole number"),
        ({"days": True}, "positive whole number"),
        ({"days": None}, "positive whole number"),
    ],
)
def test_bad_input_is_refused_before_any_call(kwargs, message):
    session = FakeSession()
    args = {
        "webuser_uid": "wu-1",
        "url": "https://p.example.com/page",
        "days": 7,
        "domain": None,
    }
    args.update(kwargs)

    with pytest.raises(InvalidInput, match=message):
        portal.portal_link(session, **args)

    assert session.calls == []


@pytest.mark.parametrize("answer", [None, "", False, {"token": "x"}])
def test_an_answer_without_a_token_is_a_protocol_error(answer):
    with pytest.raises(ProtocolError, match="did not answer a token"):
        portal.portal_link(FakeSession(answer), "wu-1", "https://p.example.com/")


def test_the_link_is_not_logged(caplog):
    caplog.set_level(logging.DEBUG, logger="otyspd")

    link = portal.portal_link(
        FakeSession("secret-token-99"), "wu-1", "https://p.example.com/"
    )

    assert "secret-token-99" in link
    assert "secret-token-99" not in caplog.text


def test_the_links_url_encoded_token_is_hidden_in_messages_too():
    link = portal.portal_link(
        FakeSession("tok/with+plus=9"), "wu-1", "https://p.example.com/"
    )
    encoded = link.rsplit("/", 1)[1]

    assert encoded == "tok%2Fwith%2Bplus%3D9"
    assert encoded not in redact(f"the server echoed {link}")


def test_portal_link_against_the_sandbox_stores_the_token_for_the_page():
    from otyspd import connect
    from otyspd.errors import BadRequest
    from otyspd.sandbox import serve

    with serve(records=200, rate_limit=None) as srv:
        session = connect(srv.api_key, srv.url)
        try:
            link = session.portal_link(
                "wu-42", "https://portal.example.com/timesheets/7", days=3
            )
            token = link.rsplit("/", 1)[-1]
            stored = srv.store.one(
                "SELECT webuser, url FROM portal_tokens WHERE token = ?", (token,)
            )
            assert link.startswith(
                "https://portal.example.com/index.php/page/ocdapp/bb/1/"
            )
            assert stored == ("wu-42", "https://portal.example.com/timesheets/7")

            # Past the server's own limit: its refusal comes through unchanged.
            with pytest.raises(BadRequest, match="expiration days"):
                session.portal_link("wu-42", "https://portal.example.com/", days=4000)
        finally:
            session.close()
