"""Secrets stay secret, TLS stays checked, and the sandbox stays on loopback.

The API key and every session token are looked for in log lines (DEBUG, over
a whole session with a relogin and errors of each kind), reprs, exception
texts and tracebacks, journal files, the connect form, and the stored
outputs of the notebooks.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3

import otyspd
from otyspd import widgets
from otyspd.errors import (
    AccessDenied,
    BadRequest,
    HTTPStatusError,
    NotFound,
    OtysError,
    ProtocolError,
    TransportError,
)
from otyspd.sandbox import serve
from otyspd.transport import Transport

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _text_of(exc: BaseException) -> str:
    """Everything an exception can show: str, repr, attributes and the whole chain."""
    parts = [str(exc), repr(exc), *traceback.format_exception(exc)]
    parts += [repr(v) for v in vars(exc).values()]
    return "\n".join(parts)


def _assert_hidden(secrets: list[str], *texts: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret shows in: {text[:300]!r}"


@pytest.fixture
def tracked_sandbox() -> Iterator[tuple[Any, list[str]]]:
    """A sandbox that remembers every session token it hands out."""
    srv = serve(records=200, rate_limit=None)
    tokens: list[str] = []
    open_session = srv.open_session

    def tracked(key: str) -> str:
        token = open_session(key)
        tokens.append(token)
        return token

    srv.open_session = tracked
    yield srv, tokens
    srv.stop()


def test_no_secret_in_logs_reprs_errors_or_the_journal_over_a_whole_session(
    tracked_sandbox, tmp_path, caplog
):
    srv, tokens = tracked_sandbox
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    journal = tmp_path / "fixes.jsonl"

    session = otyspd.connect(
        srv.api_key,
        srv.url,
        username=srv.username,
        password=srv.password,
        retries=1,
        backoff=0.01,
    )
    frame = session.read_list("Candidate", ["personalNr", "statusId"])
    edited = frame.copy()
    edited["personalNr"] = [f"S{i}" for i in range(len(frame))]
    report = session.write_back("Candidate", frame, edited, journal=journal)
    shown += [repr(session), repr(session._transport), repr(report)]
    shown += [report.frame.to_string(), report._repr_html_(), repr(report.journal)]

    # A relogin in the middle of a read: the session runs out every 4 calls.
    srv.configure(expire_after_calls=4)
    session.read_list("Candidate", ["personalNr"], page_size=50, batch=1)
    srv.configure(expire_after_calls=None)
    assert len(tokens) >= 3

    # Errors of each kind the server can cause.
    caught: list[BaseException] = []
    with pytest.raises(NotFound) as info:
        session.call("CandidateService.getDetail", "no-such-uid", {"uid": 1})
    caught.append(info.value)
    with pytest.raises(BadRequest) as info:
        session.call("CandidateService.update", frame.index[0], {"noSuchField": 1})
    caught.append(info.value)
    srv.configure(fault_rate=1.0)
    with pytest.raises(HTTPStatusError) as info:
        session.call("CandidateService.getDetail", frame.index[0], {"uid": 1})
    caught.append(info.value)
    srv.configure(fault_rate=0.0, malformed_rate=1.0)
    with pytest.raises(ProtocolError) as info:
        session.call("CandidateService.getDetail", frame.index[0], {"uid": 1})
    caught.append(info.value)
    srv.configure(malformed_rate=0.0)
    session.close()

    bad_key = "wrong-key-" + "7" * 22
    with pytest.raises(AccessDenied) as info:
        otyspd.connect(bad_key, srv.url)
    caught.append(info.value)

    secrets = [srv.api_key, srv.password, bad_key, *tokens]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logged = [formatter.format(record) for record in caplog.records]
    assert any("logged in again" in line for line in logged)  # the relogin happened
    _assert_hidden(secrets, *logged, *shown, *(_text_of(e) for e in caught))
    assert journal.read_text(encoding="utf-8").count("\n") >= 2
    _assert_hidden(secrets, journal.read_text(encoding="utf-8"))


class _EchoOws(BaseHTTPRequestHandler):
    """A server that logs in, then answers each call the way ``mode`` says, echoing
    the request (and so the token) in the body."""

    token = "k3j5h7g9f1d3s5a7p9o1i3u5y7"  # 26 characters, like a PHP session id
    mode = "html"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = json.loads(raw)
        echo = raw.decode()
        if request["method"] == "loginByUid":
            self._reply(200, json.dumps({"result": self.token, "id": request["id"]}))
        elif request["method"] == "logout":
            self._reply(200, json.dumps({"result": True, "id": request["id"]}))
        elif self.mode == "html":
            self._reply(
                500, f"<html><body>Fatal error for {echo}</body></html>", "html"
            )
        elif self.mode == "cut":
            self._reply(200, '{"result": {"echo": ' + json.dumps(echo)[:-5])
        elif self.mode == "list":
            self._reply(200, json.dumps([echo]))
        elif self.mode == "empty":
            self._reply(200, json.dumps({"id": request["id"], "echo": echo}))
        else:
            message = f"Invalid parameter in {echo}"
            self._reply(200, json.dumps({"error": {"message": message, "code": 7}}))

    def _reply(self, status: int, body: str, kind: str = "json") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", f"text/{kind}" if kind == "html" else "application/json"
        )
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoOws)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jservice.php"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("html", HTTPStatusError),
        ("cut", ProtocolError),
        ("list", ProtocolError),
        ("empty", ProtocolError),
        ("ows", BadRequest),
    ],
)
def test_errors_whose_body_echoes_the_token_never_show_it(
    echo_server, mode, error, caplog
):
    caplog.set_level(logging.DEBUG)
    key = "echo-key-" + "5" * 23
    _EchoOws.mode = mode
    transport = Transport(
        echo_server, key, retry=otyspd.transport.RetryPolicy(retries=0)
    )
    with pytest.raises(error) as info:
        transport.call("CandidateService.getDetail", ["some-uid", {"uid": 1}])
    transport.close()
    text = _text_of(info.value)
    assert "***" in text  # the echoed token was there, and redacted
    logged = [logging.Formatter().format(r) for r in caplog.records]
    _assert_hidden([_EchoOws.token, key], text, *logged, repr(transport))


def test_the_connect_form_keeps_no_key_in_its_state_repr_or_messages(
    tracked_sandbox,
):
    srv, tokens = tracked_sandbox
    form = widgets.ConnectForm(url=srv.url)
    form.key.value = "wrong-key-" + "3" * 22
    form._connect_clicked()
    failed = form.message_text
    form.key.value = srv.api_key
    form.password.value = srv.password
    form.username.value = srv.username
    form._connect_clicked()
    try:
        assert form.session is not None and not form.session.closed
        assert form.key.value == "" and form.password.value == ""
        secrets = [srv.api_key, srv.password, "wrong-key-" + "3" * 22, *tokens]
        _assert_hidden(secrets, failed, form.message_text, repr(form))
        state = json.dumps(
            {
                name: box.get_state()
                for name, box in vars(form).items()
                if hasattr(box, "get_state")
            },
            default=repr,
        )
        _assert_hidden(secrets, state)
    finally:
        form.session.close()


# ---- TLS -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_tls_verification_is_on_by_default(tracked_sandbox):
    srv, _ = tracked_sandbox
    session = otyspd.connect(srv.api_key, srv.url)
    try:
        assert session._transport.verify is True
        assert session.http.verify is True
    finally:
        session.close()
    transport = Transport("https://127.0.0.1:1/jservice.php", "a-key-of-some-length")
    assert transport.verify is True


def test_https_where_nothing_listens_fails_with_a_transport_error():
    url = f"https://127.0.0.1:{_free_port()}/jservice.php"
    with pytest.raises(TransportError):
        otyspd.connect("a-key-of-some-length", url, retries=0)


@pytest.fixture
def self_signed_ows(tmp_path) -> Iterator[str]:
    """An https OWS look-alike on 127.0.0.1 with a certificate nobody signed."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    _EchoOws.mode = "ows"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoOws)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/jservice.php"
    server.shutdown()
    server.server_close()


def test_an_unsigned_certificate_is_refused_unless_the_user_turns_checks_off(
    self_signed_ows,
):
    transport = Transport(self_signed_ows, "a-key-of-some-length")
    with pytest.raises(TransportError, match="certificate"):
        transport.login()
    transport.http.close()

    # Asked for explicitly, the check is off (and the server is reached).
    insecure = Transport(self_signed_ows, "a-key-of-some-length", verify=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        assert insecure.login() == _EchoOws.token
    insecure.http.close()


# ---- downloads and the sandbox's address ---------------------------------------------


def test_a_download_carries_the_session_in_a_cookie_not_in_the_url(
    tracked_sandbox, tmp_path
):
    srv, tokens = tracked_sandbox
    session = otyspd.connect(srv.api_key, srv.url)
    source = tmp_path / "cv.txt"
    source.write_text("curriculum vitae", encoding="utf-8")
    sent = []
    try:
        ouid = session.upload(source)["ouid"]
        session.http.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))
        path = session.download(ouid, tmp_path / "out")
    finally:
        session.close()
    assert Path(path).read_text(encoding="utf-8") == "curriculum vitae"
    downloads = [r for r in sent if "fileServiceDownload" in r.url]
    assert len(downloads) == 1
    request = downloads[0]
    assert "sessionId" not in request.url
    _assert_hidden(tokens, request.url)
    assert re.search(rf"PHPSESSID={tokens[-1]}", request.headers["Cookie"])


def test_the_sandbox_listens_on_loopback_only_unless_told_otherwise(tracked_sandbox):
    srv, _ = tracked_sandbox
    assert srv.host == "127.0.0.1"
    assert srv._httpd.server_address[0] == "127.0.0.1"
    assert srv.url.startswith("http://127.0.0.1:")
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


def test_the_sandbox_command_listens_on_loopback_by_default():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "otyspd.cli",
        "sandbox",
        "--port",
        "0",
        "--records",
        "20",
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
    finally:
        proc.send_signal(2)
        proc.communicate(timeout=30)
    url = lines[1].split(" at ")[1].strip()
    assert url.startswith("http://127.0.0.1:"), lines


# ---- stored notebook outputs ---------------------------------------------------------

# A PHP session id (26 of [a-z0-9]) within 60 characters of a word that names a session.
_TOKEN_NEAR = re.compile(
    r"(?is)(token|phpsessid|sessionid)[^\n]{0,60}?(?<![a-z0-9])[a-z0-9]{26}(?![a-z0-9])"
    r"|(?<![a-z0-9])[a-z0-9]{26}(?![a-z0-9])[^\n]{0,60}?(token|phpsessid|sessionid)"
)
# api_key= with a quoted literal, or a sandbox-shaped key (32 hex digits) anywhere.
_KEY_LITERAL = re.compile(r"""api_key\s*=\s*(['"])(?!\1)[^'"\n]+\1""")
_HEX_KEY = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")


def notebook_leaks(notebook: dict) -> list[str]:
    """The secret-looking strings in a notebook: key literals in code, tokens or keys
    in stored outputs."""
    found = []
    for cell in notebook.get("cells", []):
        source = "".join(cell.get("source", []))
        if cell.get("cell_type") == "code":
            found += [m.group(0) for m in _KEY_LITERAL.finditer(source)]
        for output in cell.get("outputs", []):
            text = json.dumps(output, ensure_ascii=False)
            found += [m.group(0) for m in _TOKEN_NEAR.finditer(text)]
            found += [m.group(0) for m in _HEX_KEY.finditer(text)]
            found += [m.group(0) for m in _KEY_LITERAL.finditer(text)]
    return found


def _cell(source: str, *texts: str) -> dict:
    outputs = [{"output_type": "stream", "name": "stdout", "text": [t]} for t in texts]
    return {"cell_type": "code", "source": [source], "outputs": outputs}


def test_the_notebook_scan_finds_secret_shapes_and_passes_clean_text():
    token = "q1w2e3r4t5y6u7i8o9p0a1s2d3"
    leaky = {
        "cells": [
            _cell("s = otyspd.connect(api_key='0123abcd')"),
            _cell("x", f"session token: {token}"),
            _cell("x", f"Cookie: PHPSESSID={token}"),
            _cell("x", "key 0f1e2d3c4b5a69788796a5b4c3d2e1f0 ready"),
        ]
    }
    assert len(notebook_leaks(leaky)) == 4
    clean = {
        "cells": [
            _cell("s = otyspd.connect(sandbox=True)  # api_key=os.environ[...]"),
            _cell("x", "uid 01367166dbb36242 read; token handling is automatic"),
            _cell("x", f"{token} is 26 characters but names no session"),
        ]
    }
    assert notebook_leaks(clean) == []


@pytest.mark.parametrize(
    "path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name
)
def test_stored_notebooks_hold_no_key_or_token(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook_leaks(notebook) == []


def test_every_error_class_redacts_what_it_is_given():
    # Regression: InvalidInput kept its problems list as given, so a secret quoted
    # in a problem showed through ``.problems`` though the message hid it.
    secret = "z9y8x7w6v5u4t3s2r1q0p9o8n7"
    otyspd.errors.register_secret(secret)
    errors = [
        OtysError(f"plain {secret}"),
        ProtocolError(f"body {secret}", body=f'{{"token": "{secret}"}}'),
        BadRequest(f"field {secret}", code=1, method="X.update"),
        HTTPStatusError(f"status {secret}", status=500),
        otyspd.errors.InvalidInput(f"input {secret}", [f"problem {secret}"]),
        otyspd.errors.IncompleteRead(f"read {secret}", resume_offset=3),
    ]
    for error in errors:
        _assert_hidden([secret], _text_of(error))
