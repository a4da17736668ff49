"""The sign-up pages through Django's test client, CSRF checks enforced as a browser meets them."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.test import Client

from labsite.views import pages

VENDORED_WEB_VITALS = "labsite/vendor/web-vitals/web-vitals.attribution.iife.js"


@pytest.fixture
def browser():
    """A client that enforces CSRF like the real middleware does for a browser."""
    return Client(enforce_csrf_checks=True)


def csrf_token(browser) -> str:
    response = browser.get("/signup/")
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text).group(1)


def test_signup_page_has_a_form_per_path_three_ways_and_the_csrf_token(browser):
    response = browser.get("/signup/?to=ada@example.test")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.text
    for path in pages.PATHS:
        assert f'action="/signup/{path}/"' in html
        for mode in ("form", "fetch", "xhr"):
            assert f'id="{path}-{mode}"' in html
    assert html.count('name="csrfmiddlewaretoken"') == 2
    assert 'value="ada@example.test"' in html
    assert "csrftoken" in response.cookies


def test_the_page_loads_web_vitals_from_the_site_itself(browser):
    html = browser.get("/signup/").text
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert f"/static/{VENDORED_WEB_VITALS}" in scripts
    assert all(src.startswith("/static/") for src in scripts), "no script from another host (CDN)"


def test_the_prefilled_address_is_escaped(browser):
    html = browser.get('/signup/?to="><script>alert(1)</script>').text
    assert "<script>alert(1)</script>" not in html


@pytest.mark.parametrize("path", pages.PATHS)
def test_a_post_without_the_csrf_token_is_refused_with_403_and_sends_nothing(browser, huey_queue, path):
    browser.get("/signup/")  # the cookie alone is not enough: the token must come back in the form
    response = browser.post(f"/signup/{path}/", {"to": "eve@example.test"})
    assert response.status_code == 403
    assert mail.outbox == []
    assert huey_queue.pending_count() == 0


def test_a_post_with_a_forged_token_is_refused(browser, huey_queue):
    browser.get("/signup/")
    response = browser.post("/signup/deferred/", {"to": "eve@example.test", "csrfmiddlewaretoken": "x" * 64})
    assert response.status_code == 403
    assert huey_queue.pending_count() == 0


def test_form_post_blocking_sends_then_redirects_303_to_the_result_page(browser):
    token = csrf_token(browser)
    response = browser.post("/signup/blocking/", {"to": "ada@example.test", "csrfmiddlewaretoken": token})
    assert response.status_code == 303
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.test"]
    location = urlsplit(response["Location"])
    assert location.path == "/signup/done/"
    query = parse_qs(location.query)
    assert query["path"] == ["blocking"]
    assert query["message_id"] == [mail.outbox[0].extra_headers["Message-ID"]]
    done = browser.get(response["Location"])
    assert done.status_code == 200
    assert "Welcome email sent" in done.text


def test_form_post_deferred_enqueues_then_redirects_to_a_page_that_follows_the_task(browser, huey_queue):
    token = csrf_token(browser)
    response = browser.post("/signup/deferred/", {"to": "grace@example.test", "csrfmiddlewaretoken": token})
    assert response.status_code == 303
    assert mail.outbox == []
    task_id = parse_qs(urlsplit(response["Location"]).query)["task_id"][0]
    assert [t.id for t in huey_queue.pending()] == [task_id]
    done = browser.get(response["Location"])
    assert f'data-task-id="{task_id}" data-status-url="/tasks/{task_id}/"' in done.text  # where its script polls
    assert "Welcome email queued" in done.text


def test_a_full_queue_shows_the_page_again_with_503_and_retry_after(browser, huey_queue, settings):
    settings.LAB_MAX_BACKLOG = 1
    token = csrf_token(browser)
    assert browser.post("/signup/deferred/", {"to": "a@example.test", "csrfmiddlewaretoken": token}).status_code == 303
    response = browser.post("/signup/deferred/", {"to": "b@example.test", "csrfmiddlewaretoken": token})
    assert (response.status_code, response["Retry-After"]) == (503, "1")
    assert "the queue is full" in response.text and 'value="b@example.test"' in response.text
    assert huey_queue.pending_count() == 1
    # the blocking path enqueues nothing, so nothing bounds it
    assert browser.post("/signup/blocking/", {"to": "c@example.test", "csrfmiddlewaretoken": token}).status_code == 303


@pytest.mark.parametrize("path,status,state", [("blocking", 200, "delivered"), ("deferred", 202, "queued")])
def test_a_post_asking_for_json_gets_the_json_answer(browser, huey_queue, path, status, state):
    token = csrf_token(browser)
    response = browser.post(f"/signup/{path}/", {"to": "lin@example.test"}, headers={
        "Accept": "application/json", "X-CSRFToken": token})
    assert response.status_code == status
    assert response.json()["state"] == state
    if state == "queued":  # the same 202 as /email/deferred/: where to follow the task
        assert response["Location"] == f"/tasks/{response.json()['task_id']}/"


def test_a_bad_address_in_a_form_post_shows_the_page_again_with_the_error(browser, huey_queue):
    token = csrf_token(browser)
    response = browser.post("/signup/deferred/", {"to": "not-an-address", "csrfmiddlewaretoken": token})
    assert response.status_code == 400
    assert "is not a valid email address" in response.text
    assert 'value="not-an-address"' in response.text
    assert huey_queue.pending_count() == 0


def test_a_bad_address_asking_for_json_is_a_json_400(browser, huey_queue):
    token = csrf_token(browser)
    response = browser.post("/signup/blocking/", {"to": "nope", "csrfmiddlewaretoken": token},
                            headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": "'to' is not a valid email address"}
    assert mail.outbox == []


@pytest.mark.parametrize("query", ["", "?path=sideways", "?path=deferred", "?path=deferred&task_id=nope"])
def test_the_result_page_refuses_a_malformed_query(browser, query):
    assert browser.get(f"/signup/done/{query}").status_code == 400


@pytest.mark.parametrize("url,method", [("/signup/", "post"), ("/signup/blocking/", "get"),
                                        ("/signup/done/", "post")])
def test_wrong_method_on_the_pages_is_a_405(client, url, method):
    assert getattr(client, method)(url).status_code == 405


def test_the_machine_endpoints_stay_csrf_exempt(browser, huey_queue):
    assert browser.post("/email/deferred/", {"to": "m@example.test"}).status_code == 202


@pytest.mark.parametrize("name", [VENDORED_WEB_VITALS, "labsite/signup.js"])
def test_the_scripts_are_served_by_the_site_itself(client, name):
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert "javascript" in response["Content-Type"]
    body = b"".join(response.streaming_content)
    assert len(body) > 1000


def test_the_vendored_web_vitals_carries_its_license():
    from django.conf import settings

    vendored = settings.BASE_DIR / "static" / VENDORED_WEB_VITALS
    assert "Apache License, Version 2.0" in vendored.read_text()[:1000]
    assert (vendored.parent / "LICENSE").exists()
