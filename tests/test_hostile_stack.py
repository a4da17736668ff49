"""A quick slice of `python -m helpers bench hostile_input`: hostile raw requests through gunicorn and the real SMTP
backend (helpers/experiments/hostile_input.py). Every answer is a 4xx or the documented 2xx, each 2xx made exactly one
email or thumbnail and each refusal none, nothing is left in the spool, and the servers still answer."""

import pytest

from helpers.experiments import hostile_input
from helpers.stack import Lab

pytestmark = pytest.mark.stack


def test_hostile_requests_through_the_real_stack(tmp_path):
    with Lab(run_dir=tmp_path, **hostile_input.HOSTILE_LAB) as lab:
        figures = hostile_input.key_figures(hostile_input.measure_hostile(lab, 400, seed=7))
    assert hostile_input.failures(figures) == {}, figures
    assert figures["requests"] == 400
    assert figures["emails_for_2xx"] > 10 and figures["thumbnails_for_2xx"] > 5  # the slice did reach the jobs
    assert sum(figures["status_by_kind"]["huge_header"].values()) > 0


def test_the_accounting_sees_a_5xx_a_wrong_2xx_and_a_missing_email():
    import pandas as pd

    rows = pd.DataFrame({"i": [0, 1, 2], "kind": ["valid", "bad_address", "valid"], "expect": ["2xx", "4xx", "2xx"],
                         "method": "POST", "endpoint": "/email/deferred/", "accept": None,
                         "status": [202, 202, 500], "error": None})
    result = hostile_input.HostileResult(rows, pd.Series({1: 2}), 0, 1, True, 0.0)
    wrong = hostile_input.failures(hostile_input.key_figures(result))
    assert wrong == {"status_5xx": 1, "unexpected_2xx": 1, "valid_refused": 1, "emails_missing": 1,
                     "emails_duplicated": 1, "spool_left": 1}
