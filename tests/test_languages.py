"""Content languages end to end: a multilingual vacancy title and option labels."""

from __future__ import annotations

import pytest

from otyspd import connect
from otyspd.sandbox import serve


@pytest.fixture(scope="module")
def live():
    srv = serve(records=200, rate_limit=None)
    session = connect(srv.api_key, srv.url)
    yield srv, session
    session.close()
    srv.stop()


def test_a_vacancy_title_is_written_and_read_in_two_languages(live):
    srv, session = live
    uid = srv.store.one('SELECT uid FROM "VacancyService" ORDER BY uid LIMIT 1')[0]

    with session.language("en"):
        session.call("VacancyService.update", uid, {"title": "Warehouse manager"})
    with session.language("nl"):
        session.call("VacancyService.update", uid, {"title": "Magazijnchef"})

    with session.language("en"):
        english = session.read_detail("Vacancy", uid, ["title"])
        listed = session.read_list("Vacancy", ["uid", "title"], {"uid": uid})
    with session.language("nl"):
        dutch = session.read_detail("Vacancy", uid, ["title"])

    assert english["title"] == "Warehouse manager"
    assert listed.loc[uid, "title"] == "Warehouse manager"
    assert dutch["title"] == "Magazijnchef"
    assert listed.attrs["otyspd"]["language"] == "en"


def test_option_labels_follow_the_session_language(live):
    srv, session = live
    uid = srv.store.one('SELECT uid FROM "VacancyService" ORDER BY uid DESC LIMIT 1')[0]
    srv.edit("VacancyService", uid, {"statusId": 4})
    with session.language("en"):
        english = session.options("Vacancy", ["statusId"])["statusId"]
        labels_en = session.read_list("Vacancy", ["uid", "statusId"], {"statusId": 4})
    with session.language("nl"):
        dutch = session.options("Vacancy", ["statusId"])["statusId"]
        labels_nl = session.read_list("Vacancy", ["uid", "statusId"], {"statusId": 4})

    assert english["4"] == "Closed" and dutch["4"] == "Gesloten"
    assert labels_en.loc[uid, "statusId"] == "Closed"
    assert set(labels_en["statusId"].astype(str)) == {"Closed"}
    assert set(labels_nl["statusId"].astype(str)) == {"Gesloten"}


def test_pages_asked_inside_a_language_block_are_read_in_it_even_after_the_block(live):
    _, session = live
    with session.language("en"):
        pages = session.iter_pages("Vacancy", ["statusId"], labels=True, page_size=5)
        expected = session.read_list("Vacancy", ["statusId"])

    # The first page is fetched only now, outside the block.
    frames = list(pages)

    read = frames[0].attrs["otyspd"]["language"]
    labels = {str(v) for f in frames for v in f["statusId"].dropna()}
    assert read == "en" and len(frames) > 1
    assert labels == {str(v) for v in expected["statusId"].dropna()}
    assert "Gesloten" not in labels
    assert sum(len(f) for f in frames) == len(expected)
