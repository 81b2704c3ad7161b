"""Files: upload checks, attach, dossier listing, safe and atomic downloads.

The first part runs against a small local HTTP handler (so a download can be
cut off half-way on purpose); the round trip at the end runs against the sandbox.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from otyspd import files
from otyspd.errors import (
    AccessDenied,
    FileTransferError,
    InvalidInput,
    NotFound,
    ProtocolError,
)

PAYLOAD = bytes(range(256)) * 64  # 16 KiB with every byte value


class FileServer(BaseHTTPRequestHandler):
    """A stand-in file service whose answers each test sets in ``server.plan``."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        raw = self.rfile.read(length)
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: "
            + self.headers["Content-Type"].encode()
            + b"\r\n\r\n"
            + raw
        )
        parts = {
            p.get_param("name", header="content-disposition"): p
            for p in message.iter_parts()
        }
        self.server.uploads.append(
            {
                "sessionId": parts["sessionId"].get_content().strip(),
                "filename": parts["file"].get_filename(),
                "type": parts["file"].get_content_type(),
                "data": parts["file"].get_payload(decode=True),
            }
        )
        status, body = self.server.plan.pop(0) if self.server.plan else (200, None)
        if body is None:
            entry = self.server.uploads[-1]
            body = {
                "file": {
                    "ouid": "F1",
                    "name": entry["filename"],
                    "mimeType": entry["type"],
                    "size": len(entry["data"]),
                }
            }
        self._send(status, json.dumps(body).encode(), "application/json")

    def do_GET(self):
        self.server.downloads.append(
            {"path": self.path, "cookie": self.headers.get("Cookie", "")}
        )
        kind, *rest = (
            self.server.plan.pop(0) if self.server.plan else ("file", "cv.pdf")
        )
        if kind == "file":
            headers = (
                {"Content-Disposition": f'attachment; filename="{rest[0]}"'}
                if rest[0] is not None
                else {}
            )
            self._send(200, PAYLOAD, "application/pdf", headers)
        elif kind == "half":
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Disposition", 'attachment; filename="cv.pdf"')
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif kind == "body":
            status, content_type, body = rest
            self._send(status, body.encode(), content_type)
        elif kind in ("gzip", "deflate", "gzip-half"):
            body = (
                zlib.compress(PAYLOAD)
                if kind == "deflate"
                else gzip.compress(PAYLOAD * 4)
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Disposition", 'attachment; filename="cv.pdf"')
            self.send_header("Content-Encoding", kind.split("-")[0])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if kind != "gzip-half" else body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = kind == "gzip-half"

    def _send(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FileServer)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


class FakeTransport:
    timeout = 5.0
    verify = True

    def __init__(self):
        self.token = "tok0000000000000000000000a"
        self.logins = 0

    def login(self):
        self.logins += 1
        self.token = f"tok{self.logins:023d}"
        return self.token

    def current_token(self):
        return self.token

    def refresh_token(self, refused):
        return self.token if self.token != refused else self.login()


DOC_TYPES = [
    {
        "uid": "1",
        "name": "CV",
        "forDocuments": True,
        "forCandidates": True,
        "forVacancies": False,
    },
    {
        "uid": "2",
        "name": "Contract",
        "forDocuments": True,
        "forCandidates": True,
        "forVacancies": True,
    },
    {
        "uid": "3",
        "name": "contract",
        "forDocuments": "1",
        "forCandidates": "1",
        "forVacancies": "0",
    },
    {
        "uid": "4",
        "name": "Note",
        "forDocuments": False,
        "forCandidates": True,
        "forVacancies": True,
    },
    {
        "uid": "5",
        "name": "Vacancy text",
        "forDocuments": 1,
        "forCandidates": 0,
        "forVacancies": 1,
    },
]


class FakeSession:
    def __init__(self, server=None):
        self.http = requests.Session()
        base = (
            f"http://127.0.0.1:{server.server_port}/"
            if server
            else "http://127.0.0.1:9/"
        )
        self.file_service_url = base + "fileService.php"
        self.download_url = base + "fileServiceDownload"
        self._transport = FakeTransport()
        self._cache = {}
        self.calls = []
        self.dossier = [
            {"id_rec": 900 + i, "subject": f"doc {i}", "candidateUid": "C1"}
            for i in range(5)
        ]

    def call(self, method, *params):
        self.calls.append((method, params))
        args = params[0] if params else None
        if method == "DocumentTypeService.getListEx":
            rows = DOC_TYPES[args["offset"] : args["offset"] + 2]  # a small page size
            return {
                "listOutput": rows,
                "totalCount": len(DOC_TYPES),
                "searchExtras": [],
            }
        if method == "AttachedDocumentsService.add":
            return 4711
        if method == "DossierService.getCount":
            return len(self.dossier)
        if method == "DossierService.getList":
            return self.dossier[args["offset"] : args["offset"] + 2]
        raise AssertionError(method)


@pytest.fixture
def fresh(server):
    server.plan = []
    server.uploads = []
    server.downloads = []
    return FakeSession(server)


# ---- upload --------------------------------------------------------------------------


def test_upload_sends_the_token_in_the_multipart_body_and_returns_the_entry(
    fresh, server, tmp_path
):
    path = tmp_path / "cv.pdf"
    path.write_bytes(PAYLOAD)

    info = files.upload(fresh, path)

    assert info == {
        "ouid": "F1",
        "name": "cv.pdf",
        "mimeType": "application/pdf",
        "size": len(PAYLOAD),
    }
    (sent,) = server.uploads
    assert sent["sessionId"] == fresh._transport.token
    assert (sent["filename"], sent["type"], sent["data"]) == (
        "cv.pdf",
        "application/pdf",
        PAYLOAD,
    )


def test_upload_takes_file_objects_and_bytes_with_a_name(fresh, server, tmp_path):
    path = tmp_path / "letter.txt"
    path.write_bytes(b"hello")
    with path.open("rb") as handle:
        assert files.upload(fresh, handle)["name"] == "letter.txt"
    assert files.upload(fresh, b"abc", name="../x/notes.txt")["name"] == "notes.txt"
    assert [u["data"] for u in server.uploads] == [b"hello", b"abc"]


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda d: d / "missing.pdf", {}, "no file at"),
        (lambda d: d, {}, "not a regular file"),
        (lambda d: _write(d / "empty.pdf", b""), {}, "is empty"),
        (
            lambda d: _write(d / "big.pdf", b"x" * 101),
            {"max_size": 100},
            "over the upload limit",
        ),
        (lambda d: b"data", {}, "needs a file name"),
        (lambda d: 12, {}, "takes a path"),
        (lambda d: _write(d / "a.pdf", b"x"), {"max_size": 0}, "positive number"),
        (lambda d: _write(d / "a.pdf", b"x"), {"name": ""}, "non-empty file name"),
    ],
)
def test_upload_refuses_bad_files_before_sending(
    fresh, server, tmp_path, make, kwargs, message
):
    with pytest.raises(InvalidInput, match=message):
        files.upload(fresh, make(tmp_path), **kwargs)
    assert server.uploads == []


def test_the_default_size_limit_is_8_mb_and_a_session_may_change_it(
    fresh, server, tmp_path
):
    big = _write(tmp_path / "big.bin", b"x" * (files.MAX_UPLOAD_SIZE + 1))
    with pytest.raises(InvalidInput, match="8,388,608 bytes"):
        files.upload(fresh, big)
    fresh.max_upload_size = 10
    with pytest.raises(InvalidInput, match="limit of 10 bytes"):
        files.upload(fresh, _write(tmp_path / "s.bin", b"x" * 11))
    assert server.uploads == []


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (
            200,
            {"error": {"message": "File type not allowed", "code": 0}},
            FileTransferError,
            "not allowed",
        ),
        (413, {"error": "too large"}, FileTransferError, "HTTP 413"),
        (200, {}, ProtocolError, "not one"),
        (200, {"a": {"ouid": "1"}, "b": {"ouid": "2"}}, ProtocolError, "not one"),
        (200, {"file": {"name": "x"}}, ProtocolError, "no file ouid"),
        (200, ["x"], ProtocolError, "not one"),
    ],
)
def test_a_refused_or_odd_upload_answer_is_a_clear_error(
    fresh, server, tmp_path, status, body, error, message
):
    server.plan = [(status, body)]
    with pytest.raises(error, match=message):
        files.upload(fresh, _write(tmp_path / "a.exe", b"MZ"))


def test_an_upload_refused_for_the_session_logs_in_again_once(fresh, server, tmp_path):
    denied = {"error": {"message": "Access denied; please login again", "code": 0}}
    server.plan = [(200, denied)]

    info = files.upload(fresh, _write(tmp_path / "a.pdf", b"x"))

    assert info["ouid"] == "F1"
    assert fresh._transport.logins == 1
    assert [u["sessionId"] for u in server.uploads] == [
        "tok0000000000000000000000a",
        fresh._transport.token,
    ]

    server.plan = [(200, denied), (200, denied)]
    with pytest.raises(AccessDenied):
        files.upload(fresh, _write(tmp_path / "a.pdf", b"x"))


# ---- document types and attach -------------------------------------------------------


def test_document_types_pages_by_total_count_and_types_the_flags(fresh):
    types = files.document_types(fresh)

    assert list(types.index) == ["1", "2", "3", "4", "5"]
    assert types.index.name == "uid"
    assert str(types["forDocuments"].dtype) == "boolean"
    assert types["forDocuments"].tolist() == [True, True, True, False, True]
    assert types["forCandidates"].tolist() == [True, True, True, True, False]
    assert types["forProjects"].isna().all()
    offsets = [
        p[0]["offset"] for m, p in fresh.calls if m == "DocumentTypeService.getListEx"
    ]
    assert offsets == [0, 2, 4]


@pytest.mark.parametrize(
    ("entity", "key"),
    [
        ("candidate", "candidateUid"),
        ("Candidates", "candidateUid"),
        ("relation", "relationUid"),
        ("customer", "relationUid"),
        ("contact", "relationContactUid"),
        ("Customer Contacts", "relationContactUid"),
        ("vacancies", "vacancyUid"),
        ("task", "taskUid"),
        ("sales_trajectory", "salesTrajectoryUid"),
        ("projects", "projectUid"),
    ],
)
def test_entities_accept_natural_words(entity, key):
    assert files.resolve_entity(entity).key == key


def test_attach_resolves_a_type_name_and_sends_the_documented_fields(fresh):
    dossier_id = files.attach(
        fresh, "Candidate", "C1", {"ouid": "F1"}, "cv", "CV Jan", description="x"
    )

    assert dossier_id == "4711"
    method, (args,) = fresh.calls[-1]
    assert method == "AttachedDocumentsService.add"
    assert args == {
        "candidateUid": "C1",
        "fileUid": "F1",
        "typeId": "1",
        "subject": "CV Jan",
        "description": "x",
    }


def test_attach_takes_a_type_uid_and_a_plain_ouid(fresh):
    files.attach(fresh, "vacancy", "V1", "F2", 5, "text")
    assert fresh.calls[-1][1][0]["typeId"] == "5"
    assert fresh.calls[-1][1][0]["vacancyUid"] == "V1"


@pytest.mark.parametrize(
    ("entity", "type_id", "message"),
    [
        ("candidate", "contract", "ambiguous"),
        ("candidate", "Note", "no document type 'Note'"),
        ("candidate", "4", "not for documents of a candidate"),
        ("vacancy", "CV", "no document type 'CV'"),
        ("candidate", "Passport", "1 \\(CV\\)"),
        ("candidate", "", "type_id is empty"),
        ("candidate", 1.0, "type_id must be"),
    ],
)
def test_attach_refuses_unusable_types_and_lists_the_choices(
    fresh, entity, type_id, message
):
    with pytest.raises(InvalidInput, match=message):
        files.attach(fresh, entity, "C1", "F1", type_id, "subject")
    assert not any(m == "AttachedDocumentsService.add" for m, _ in fresh.calls)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("animal", "C1", "F1", "1", "s"), "unknown entity"),
        (("candidate", "", "F1", "1", "s"), "uid must be"),
        (("candidate", "C1", {}, "1", "s"), "file must be"),
        (("candidate", "C1", "F1", "1", "  "), "subject must be"),
    ],
)
def test_attach_refuses_bad_input_before_any_call(fresh, args, message):
    with pytest.raises(InvalidInput, match=message):
        files.attach(fresh, *args)
    assert fresh.calls == []


def test_attach_refuses_extra_fields_that_shadow_the_named_ones(fresh):
    with pytest.raises(InvalidInput, match="typeId"):
        files.attach(fresh, "candidate", "C1", "F1", "1", "s", typeId="2")


def test_documents_pages_with_count_and_list_and_keeps_ids_as_strings(fresh):
    docs = files.documents(fresh, "candidates", "C1")

    assert docs["id_rec"].tolist() == ["900", "901", "902", "903", "904"]
    assert str(docs["id_rec"].dtype) == "string"
    first = fresh.calls[0]
    assert first == (
        "DossierService.getCount",
        (
            {
                "objectEntityId": 2,
                "objectUid": "C1",
                "restrictClass": ["AttachedDocs"],
                "limit": 100,
                "offset": 0,
            },
        ),
    )
    assert [p[0]["offset"] for m, p in fresh.calls[1:]] == [0, 2, 4]


# ---- download ------------------------------------------------------------------------


def test_download_to_a_folder_uses_the_cookie_and_the_servers_name(
    fresh, server, tmp_path
):
    path = files.download(fresh, "F1", tmp_path)

    assert path == tmp_path / "cv.pdf"
    assert path.read_bytes() == PAYLOAD
    (request,) = server.downloads
    assert request["path"] == "/fileServiceDownload?ouid=F1&class=AttachedDocument"
    assert request["cookie"] == f"PHPSESSID={fresh._transport.token}"
    assert fresh._transport.token not in request["path"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cv.pdf"]


def test_download_to_a_file_path(fresh, server, tmp_path):
    path = files.download(fresh, "F1", tmp_path / "mine.bin")
    assert path == tmp_path / "mine.bin"
    assert path.read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    ("server_name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/etc/passwd", "passwd"),
        ("..\\\\..\\\\win.ini", "win.ini"),
        ("..", "F9"),
        ("", "F9"),
        (None, "F9"),
        ("a\x01b\x7fc.txt", "abc.txt"),
        ("...hidden", "hidden"),
        ('re:port?"1".pdf', "re_port__1_.pdf"),
    ],
)
def test_a_name_from_the_server_never_leaves_the_folder(
    fresh, server, tmp_path, server_name, expected
):
    server.plan = [("file", server_name)]

    path = files.download(fresh, "F9", tmp_path)

    assert path == tmp_path / expected
    assert path.resolve().parent == tmp_path.resolve()
    assert path.read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "attachment; filename=\"caf_ x.pdf\"; filename*=UTF-8''caf%C3%A9%20x.pdf",
            "café x.pdf",
        ),
        ("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("attachment; filename=plain.txt", "plain.txt"),
        ("inline", "F7"),
        ("", "F7"),
    ],
)
def test_the_extended_file_name_wins_and_is_made_safe(header, expected):
    response = requests.Response()
    response.headers["Content-Disposition"] = header
    assert files._server_filename(response, "F7") == expected


def test_safe_filename_drops_nul_and_caps_the_length():
    assert files.safe_filename("a\x00b.pdf") == "ab.pdf"
    long = files.safe_filename("x" * 500 + ".pdf")
    assert long.endswith(".pdf") and len(long.encode()) <= 200


def test_an_existing_file_is_not_overwritten_unless_asked(fresh, server, tmp_path):
    (tmp_path / "cv.pdf").write_bytes(b"mine")
    with pytest.raises(InvalidInput, match="already exists"):
        files.download(fresh, "F1", tmp_path)
    assert (tmp_path / "cv.pdf").read_bytes() == b"mine"

    target = tmp_path / "keep.bin"
    target.write_bytes(b"mine")
    with pytest.raises(InvalidInput, match="overwrite=True"):
        files.download(fresh, "F1", target)
    assert len(server.downloads) == 1  # the explicit path was refused before asking

    assert files.download(fresh, "F1", target, overwrite=True).read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cv.pdf", "keep.bin"]


@pytest.mark.parametrize(
    ("plan", "error", "message"),
    [
        (("half",), FileTransferError, "nothing was written"),
        (
            ("body", 500, "text/html", "<h1>Internal error</h1>"),
            FileTransferError,
            "HTTP 500",
        ),
        (
            ("body", 200, "text/html", "<html>Oops, something went wrong</html>"),
            FileTransferError,
            "error page",
        ),
        (
            ("body", 200, "application/json", '{"error": "bad class"}'),
            FileTransferError,
            "error page",
        ),
        (("body", 404, "text/html", "File not found"), NotFound, "no file"),
    ],
)
def test_a_failed_download_leaves_no_file_behind(
    fresh, server, tmp_path, plan, error, message
):
    server.plan = [plan]

    with pytest.raises(error, match=message):
        files.download(fresh, "F1", tmp_path)
    with pytest.raises(error):
        server.plan = [plan]
        files.download(fresh, "F1", tmp_path / "named.pdf")

    assert list(tmp_path.iterdir()) == []


def test_a_compressed_download_is_checked_against_the_bytes_sent(
    fresh, server, tmp_path
):
    # Content-Length counts the compressed bytes; requests hands over the file's
    server.plan = [("gzip",)]
    path = files.download(fresh, "F1", tmp_path)
    assert path.read_bytes() == PAYLOAD * 4
    server.plan = [("deflate",)]
    path = files.download(fresh, "F1", tmp_path / "d.pdf")
    assert path.read_bytes() == PAYLOAD

    server.plan = [("gzip-half",)]
    with pytest.raises(FileTransferError, match="nothing was written"):
        files.download(fresh, "F1", tmp_path / "half.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cv.pdf", "d.pdf"]


def test_a_refused_download_logs_in_again_once(fresh, server, tmp_path):
    denied = ("body", 200, "text/html", "Access denied; please login again")
    server.plan = [denied]

    path = files.download(fresh, "F1", tmp_path)

    assert path.read_bytes() == PAYLOAD
    assert fresh._transport.logins == 1
    assert server.downloads[1]["cookie"] == f"PHPSESSID={fresh._transport.token}"

    server.plan = [denied, denied]
    with pytest.raises(AccessDenied):
        files.download(fresh, "F1", tmp_path / "other.pdf")
    assert not (tmp_path / "other.pdf").exists()


def test_a_dropped_connection_is_a_file_transfer_error(tmp_path):
    session = FakeSession()  # nothing listens on port 9
    with pytest.raises(FileTransferError, match="nothing was written"):
        files.download(session, "F1", tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("ouid", "dest", "message"),
    [
        ("", ".", "ouid must be"),
        (None, ".", "ouid must be"),
        ("F1", "", "dest must be"),
        ("F1", 3, "dest must be"),
        ("F1", "no/such/folder/", "does not exist"),
        ("F1", "no/such/folder/file.pdf", "does not exist"),
    ],
)
def test_download_refuses_bad_input_before_any_request(
    fresh, server, ouid, dest, message
):
    with pytest.raises(InvalidInput, match=message):
        files.download(fresh, ouid, dest)
    assert server.downloads == []


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---- against the sandbox -------------------------------------------------------------


@pytest.fixture(scope="module")
def live():
    from otyspd import connect
    from otyspd.sandbox import serve

    srv = serve(records=200, seed=3, rate_limit=None)
    session = connect(
        srv.api_key, srv.url, username=srv.username, password=srv.password
    )
    yield srv, session
    session.close()
    srv.stop()


def _a_candidate(srv):
    return srv.store.one('SELECT uid FROM "CandidateService" ORDER BY uid LIMIT 1')[0]


def test_round_trip_upload_attach_list_and_download_gives_the_same_bytes(
    live, tmp_path
):
    srv, session = live
    candidate = _a_candidate(srv)
    source = _write(tmp_path / "Jan Jansen CV.pdf", PAYLOAD)

    info = session.upload(source)
    item = session.attach(
        "Candidate", candidate, info, "cv", "CV Jan Jansen", description="sent by mail"
    )
    docs = session.documents("candidates", candidate)

    assert info["name"] == "Jan Jansen CV.pdf" and info["size"] == len(PAYLOAD)
    row = docs[docs["id_rec"] == info["ouid"]]
    assert len(row) == 1
    assert row["subject"].iloc[0] == "CV Jan Jansen"
    assert row["typeId"].iloc[0] == "1"
    assert str(docs["id_rec"].dtype) == "string"
    assert item in set(docs["uid"])

    folder = tmp_path / "out"
    folder.mkdir()
    into_folder = session.download(info["ouid"], folder)
    to_path = session.download(info["ouid"], tmp_path / "copy.pdf")
    assert into_folder == folder / "Jan Jansen CV.pdf"
    assert into_folder.read_bytes() == to_path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in folder.iterdir()) == ["Jan Jansen CV.pdf"]


def test_document_types_of_the_sandbox(live):
    _, session = live
    types = session.document_types()

    assert "CV" in set(types["name"])
    assert types.loc["7", "forDocuments"] == False  # noqa: E712 - a pandas boolean
    assert str(types["forCandidates"].dtype) == "boolean"


@pytest.mark.parametrize(
    ("entity", "type_id", "message"),
    [
        ("candidate", "Gespreksnotitie", "no document type 'Gespreksnotitie'"),
        ("candidate", "7", "not for documents"),
        ("candidate", "Offerte", "Overig"),
        ("vacancy", "CV", "choose one of"),
    ],
)
def test_the_sandbox_types_that_do_not_fit_are_refused_before_adding(
    live, entity, type_id, message
):
    srv, session = live
    before = srv.stats["calls"]
    with pytest.raises(InvalidInput, match=message):
        session.attach(entity, "x", "F1", type_id, "s")
    assert sum(
        n for m, n in srv.stats["calls"].items() if "AttachedDocuments" in m
    ) == sum(n for m, n in before.items() if "AttachedDocuments" in m)


def test_the_server_refusing_a_type_or_size_is_a_file_transfer_error(live, tmp_path):
    srv, session = live
    with pytest.raises(FileTransferError, match="not allowed"):
        session.upload(_write(tmp_path / "tool.exe", b"MZ\x90"))
    srv.configure(max_upload_bytes=10)
    try:
        with pytest.raises(FileTransferError, match="too large"):
            session.upload(_write(tmp_path / "a.txt", b"x" * 20))
    finally:
        srv.configure(max_upload_bytes=8 * 1024 * 1024)


def test_a_server_name_with_dot_dot_stays_inside_the_folder(live, tmp_path):
    _, session = live
    # Upload past the client's own name cleaning, as another tool could have.
    answer = requests.post(
        session.file_service_url,
        data={"sessionId": session._transport.token},
        files={"file": ("../../etc/passwd.txt", b"root:x:0:0", "text/plain")},
        timeout=10,
    ).json()
    ouid = answer["file"]["ouid"]

    path = session.download(ouid, tmp_path)

    assert path == tmp_path / "passwd.txt"
    assert path.read_bytes() == b"root:x:0:0"
    assert [p.name for p in tmp_path.iterdir()] == ["passwd.txt"]


def test_downloading_an_unknown_file_writes_nothing(live, tmp_path):
    _, session = live
    with pytest.raises(NotFound, match="File not found"):
        session.download("nosuchfile", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_refused_download_session_logs_in_again(live, tmp_path):
    srv, session = live
    info = session.upload(b"hello", name="hello.txt")
    logins = srv.stats["logins"]
    session._transport._token = (
        "expiredtoken0000000000000"  # as if the server forgot it
    )

    path = session.download(info["ouid"], tmp_path)

    assert path.read_bytes() == b"hello"
    assert srv.stats["logins"] == logins + 1


def test_the_session_passes_a_size_limit_to_the_upload(live, tmp_path):
    _, live_session = live
    path = _write(tmp_path / "s.pdf", b"x" * 11)
    with pytest.raises(InvalidInput, match="limit of 10 bytes"):
        live_session.upload(path, max_size=10)
    assert live_session.max_upload_size is None
    live_session.max_upload_size = 10
    with pytest.raises(InvalidInput, match="limit of 10 bytes"):
        live_session.upload(path)
    live_session.max_upload_size = None
    assert live_session.upload(path)["size"] == 11
