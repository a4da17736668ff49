"""A quick slice of `python -m helpers bench hostile_input`: hostile raw requests through gunicorn and through uvicorn
with the real SMTP backend (helpers/experiments/hostile_input.py). Every answer is a 4xx or the documented 2xx, each
2xx made exactly one email or thumbnail and each refusal none, nothing is left in the spool, the servers still
answer, and Idempotency-Key races on the ledger end with one job per key."""

import json

import pandas as pd
import pytest

from helpers.experiments import hostile_input
from helpers.instruments import hostile
from helpers.stack import Lab

pytestmark = pytest.mark.stack

IDN_ASCII = "idn{}@xn--bcher-kva.example.test"


@pytest.mark.parametrize("server", hostile_input.SERVERS)
def test_hostile_requests_and_key_races_through_the_real_stack(tmp_path, server):
    with Lab(run_dir=tmp_path, web_server=server, **{**hostile_input.HOSTILE_LAB, "web_workers": 2}) as lab:
        # An international domain, on every email path: sent in its ASCII form (aiosmtplib's too: no SMTPUTF8).
        for n, path in enumerate(hostile.EMAIL_ENDPOINTS):
            response = lab.http.post(path, {"to": f"idn{n}@B\u00fccher.example.test"})
            assert response.status in (200, 202), (path, response.body)
        result = hostile_input.measure_hostile(lab, 160, seed=7, races=10)
        sent = {r[0] for r in lab.mail.deliveries()["rcpt_tos"]}
    figures = hostile_input.key_figures(result)
    assert hostile_input.failures(figures) == {}, figures
    assert {IDN_ASCII.format(n) for n in range(len(hostile.EMAIL_ENDPOINTS))} <= sent
    assert figures["requests"] == 160
    assert figures["emails_for_2xx"] > 5 and figures["thumbnails_for_2xx"] > 2  # the slice did reach the jobs
    assert sum(figures["status_by_kind"]["huge_header"].values()) > 0
    assert figures["idempotency_races"]["races"] == figures["idempotency_races"]["held"] == 10


def test_the_accounting_sees_a_5xx_a_wrong_2xx_and_a_missing_email():
    rows = pd.DataFrame({"i": [0, 1, 2], "kind": ["valid", "bad_address", "valid"], "expect": ["2xx", "4xx", "2xx"],
                         "method": "POST", "endpoint": "/email/deferred/", "accept": None,
                         "status": [202, 202, 500], "error": None})
    result = hostile_input.HostileResult(rows, pd.Series({1: 2}), 0, 1, True, 0.0)
    wrong = hostile_input.failures(hostile_input.key_figures(result))
    assert wrong == {"status_5xx": 1, "unexpected_2xx": 1, "valid_refused": 1, "emails_missing": 1,
                     "emails_duplicated": 1, "spool_left": 1}


def test_the_race_accounting_sees_a_500_two_jobs_and_a_second_recipient_accepted():
    job, other = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
    races = pd.DataFrame({"race": [0, 0, 1, 1, 2, 2, 3, 3],
                          "to": ["a", "a", "a", "b", "a", "a", "a", "b"],
                          "status": [202, 202, 202, 422, 202, 500, 202, 202],
                          "job_id": [job, job, job, None, job, None, job, job],
                          "jobs": [[job]] * 4 + [[job]] * 2 + [[job, other]] * 2, "emails": 1})
    figures = hostile_input.race_figures(races)
    assert (figures["races"], figures["held"], figures["status_5xx"]) == (4, 2, 1)
    assert [f["race"] for f in figures["failed"]] == [2, 3]


def test_the_bench_exits_non_zero_when_a_claim_failed(tmp_path, monkeypatch, capsys):
    from helpers.runs import bench, folders

    monkeypatch.setattr(folders, "new_run_dir", lambda name: tmp_path)
    monkeypatch.setitem(bench.BENCHMARKS, "claims", lambda run_dir, ok=True: {"claims_failed": [] if ok else ["x"]})
    assert bench.run("claims")["claims_failed"] == []
    with pytest.raises(SystemExit) as exited:
        bench.run("claims", {"ok": False})
    assert exited.value.code == 1
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["claims_failed"] == ["x"]
