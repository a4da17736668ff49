"""Malformed, oversized and hostile input to every endpoint (hypothesis): the answer is never a 5xx, and a
refusal (any 4xx) leaves nothing behind: no task queued or scheduled, no job row, no email, no spooled upload."""

import pytest
from django.core import mail
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labsite.models import EmailJob

pytestmark = pytest.mark.django_db(transaction=True)

POST_ENDPOINTS = ["/email/blocking/", "/email/deferred/", "/email/deferred/retries/", "/email/deferred/production/",
                  "/email/ledger/", "/djtasks/email/",
                  "/thumbnails/blocking/", "/thumbnails/deferred/", "/djtasks/thumbnails/",
                  "/signup/blocking/", "/signup/deferred/"]
GET_ENDPOINTS = ["/noop/", "/tasks/{x}/", "/jobs/{x}/", "/djtasks/{x}/", "/signup/", "/signup/done/"]

hostile_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=250, max_size=2000),
    st.sampled_from(["a@b.test\r\nBcc: victim@example.test", "<script>alert(1)</script>@x.test", "' OR 1=1 --",
                     "a" * 64 + "@" + "b" * 255 + ".test", "\x00@example.test", "user@[127.0.0.1]", "..@..",
                     "ＡＢＣ@例え.テスト", "%0d%0aBcc:x@y.z", "a@b", "@", "",
                     "\u212a@example.test", "\u017fam@example.test"]),  # valid to validate_email, not to SMTP
)
forms = st.dictionaries(st.sampled_from(["to", "TO", "image", "to[]", "x", ""]),
                        st.one_of(hostile_text, st.lists(hostile_text, min_size=2, max_size=3)), max_size=3)
raw_bodies = st.tuples(
    st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "application/json",
                     "text/plain", "multipart/form-data", "image/png"]),
    st.binary(max_size=4000))
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])


def left_behind(huey) -> dict:
    from django.conf import settings as django_settings

    spool = django_settings.THUMBNAIL_SPOOL_DIR
    return {"queued": huey.pending_count(), "scheduled": huey.scheduled_count(), "jobs": EmailJob.objects.count(),
            "emails": len(mail.outbox), "spooled": len(list(spool.glob("*"))) if spool.exists() else 0}


NOTHING = {"queued": 0, "scheduled": 0, "jobs": 0, "emails": 0, "spooled": 0}


def reset(huey):
    huey.flush()
    EmailJob.objects.all().delete()
    mail.outbox.clear()


def check(response, huey):
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert left_behind(huey) == NOTHING
        if response.content and response.get("Content-Type", "").startswith("application/json"):
            assert "error" in response.json()


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@SETTINGS
@given(form=forms)
def test_hostile_forms_never_500_and_a_refusal_leaves_nothing(client, huey_queue, path, form):
    reset(huey_queue)
    check(client.post(path, form, HTTP_ACCEPT="application/json"), huey_queue)


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@SETTINGS
@given(body=raw_bodies)
def test_hostile_raw_bodies_never_500_and_a_refusal_leaves_nothing(client, huey_queue, path, body):
    reset(huey_queue)
    content_type, data = body
    check(client.generic("POST", path, data, content_type=content_type, HTTP_ACCEPT="application/json"), huey_queue)


@pytest.mark.parametrize("path", GET_ENDPOINTS)
@SETTINGS
@given(x=st.text(alphabet=st.characters(blacklist_characters="/?#", codec="utf-8"), min_size=1, max_size=200),
       query=st.dictionaries(st.text(max_size=10), hostile_text, max_size=3),
       method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
def test_hostile_paths_queries_and_methods_never_500(client, huey_queue, path, x, query, method):
    reset(huey_queue)
    from urllib.parse import quote

    response = client.generic(method, path.format(x=quote(x, safe="")), QUERY_STRING=_query(query))
    check(response, huey_queue)


def _query(query: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(query)


@pytest.mark.parametrize("path", ["/email/deferred/", "/email/ledger/", "/email/blocking/"])
def test_oversized_and_overlong_bodies_are_refused_with_400(client, huey_queue, path):
    huge = {"to": "a@example.test", "pad": "x" * (3 * 2**20)}  # over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB)
    assert client.post(path, huge).status_code == 400
    many = {f"f{i}": "1" for i in range(1500)} | {"to": "a@example.test"}  # over DATA_UPLOAD_MAX_NUMBER_FIELDS
    assert client.post(path, many).status_code == 400
    assert left_behind(huey_queue) == NOTHING


# -- one rule for international addresses, the same on every path ------------------------------------------------------

IDN_ADDRESS, IDN_ASCII = "ada@B\u00fccher.example", "ada@xn--bcher-kva.example"
EVERY_EMAIL_PATH = ["/email/validate/", "/email/blocking/", "/email/deferred/", "/email/ledger/", "/djtasks/email/",
                    "/email/async/", "/email/async/thread-sensitive/", "/email/async/thread-pool/",
                    "/signup/blocking/", "/signup/deferred/"]


def recipients_handed_on(huey) -> list[str]:
    """Every address the request left for a send: emails sent, task arguments queued, ledger jobs."""
    def addresses(value) -> list[str]:  # in a task's arguments, however nested (Huey's Tasks backend wraps them)
        if isinstance(value, str):
            return [value] if "@" in value else []
        if isinstance(value, dict):
            value = list(value.values())
        return [a for item in value for a in addresses(item)] if isinstance(value, (list, tuple)) else []

    queued = [a for task in huey.pending() for a in addresses([task.args, task.kwargs])]
    return [to for message in mail.outbox for to in message.to] + queued + \
        list(EmailJob.objects.values_list("to", flat=True))


@pytest.mark.parametrize("path", ["/email/validate/", "/email/blocking/", "/email/deferred/", "/email/ledger/",
                                  "/djtasks/email/"])
def test_an_international_domain_is_handed_on_in_its_ascii_form(client, huey_queue, path):
    """smtplib would send the domain punycoded and aiosmtplib refuse it (no SMTPUTF8): the request converts it, so
    every path, the queues' and the ledger's included, sends the same ASCII address (the async paths: on the real
    stack, tests/test_hostile_stack.py)."""
    reset(huey_queue)
    response = client.post(path, {"to": IDN_ADDRESS})
    assert response.status_code in (200, 202), response.content
    handed_on = recipients_handed_on(huey_queue) or [response.json()["to"]]
    assert handed_on == [IDN_ASCII]


@pytest.mark.parametrize("path", EVERY_EMAIL_PATH)
@pytest.mark.parametrize("address", ["ad\u00e4@example.test", "\u212a@example.test", "\uff21\uff22\uff23@example.test",
                                     "ada@\u2603.example", "ada@xn--.example"])
def test_an_address_no_path_can_send_is_refused_alike_before_anything_is_sent(client, huey_queue, path, address):
    """A non-ASCII part before the @ (it needs SMTPUTF8, which the site does not send) or a domain IDNA 2008 refuses
    (a symbol: IDNA 2003, Django's own punycode, accepts it): a 400 on every path, nothing sent or queued."""
    reset(huey_queue)
    response = client.post(path, {"to": address}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400, response.content
    assert left_behind(huey_queue) == NOTHING
