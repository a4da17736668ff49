"""Published benchmarks as data (helpers.protocols.published): every figure names its source, orderings compare on
numbers, and the worker settings the README names reach the workers' command lines."""

import math
from types import SimpleNamespace

from helpers.protocols import published
from helpers.stack.lab import LabConfig
from helpers.stack.queues import backend_class


def test_every_published_figure_names_its_source_and_commit():
    tables = [published.PQB_DRAINS, published.THREADMILL_ONE_WORKER]
    for table in tables:
        for name, row in table.items():
            assert row["source"].startswith("https://github.com/") and row["commit"] in row["source"], name
            assert len(row["commit"]) == 40, name
    assert set(published.PQB_IN_LAB) <= set(published.PQB_DRAINS)
    assert set(published.PQB_DEFAULT_SETTING.values()) <= set(published.PQB_IN_LAB)


def test_orderings_that_agree():
    compared = published.compare_orderings({"huey": 9.0, "celery": 30.0, "rq": 400.0},
                                           {"rq": 51.05, "huey": 3.62, "celery": 11.68, "arq": 35.37})
    assert compared["agree"] and compared["swapped"] == []
    assert compared["ours_rank"] == compared["published_rank"] == {"rq": 3, "huey": 1, "celery": 2}
    assert compared["kendall_tau"] == compared["spearman_rho"] == 1.0
    assert compared["only_published"] == ["arq"] and compared["only_ours"] == []


def test_orderings_with_a_swapped_pair():
    compared = published.compare_orderings({"dramatiq": 6.0, "huey": 5.0, "rq": 100.0},
                                           {"dramatiq": 1.53, "huey": 3.62, "rq": 51.05})
    assert not compared["agree"] and compared["swapped"] == [("dramatiq", "huey")]
    assert compared["ours_rank"]["huey"] == 1 and compared["published_rank"]["dramatiq"] == 1
    assert compared["kendall_tau"] < 1.0
    rates = published.compare_orderings({"a": 100.0, "b": 50.0}, {"a": 10.0, "b": 20.0}, higher_is_better=True)
    assert rates["ours_rank"] == {"a": 1, "b": 2} and rates["swapped"] == [("a", "b")]
    assert math.isnan(published.compare_orderings({"a": 1.0}, {"a": 2.0})["kendall_tau"])


def argv(backend: str, **config) -> list[str]:
    return backend_class(backend)(SimpleNamespace(config=LabConfig(**config))).worker_argv()


def test_the_readme_worker_settings_reach_the_worker_command_lines():
    for setting, model in published.PQB_IN_LAB.items():
        command = argv(model["backend"], **model["changes"])
        if "celery_pool" in model["changes"]:
            assert command[command.index("--pool") + 1] == model["changes"]["celery_pool"], setting
        if model["backend"] == "huey_redis":
            assert "--disable-health-check" in command and command[command.index("--delay") + 1] == "0.001"
    assert "--disable-health-check" not in argv("huey_redis") and "prefork" in argv("celery_redis")


def test_every_chart_row_the_lab_makes_is_a_published_row_on_one_worker():
    assert set(published.THREADMILL_IN_LAB) <= set(published.THREADMILL_ONE_WORKER)
    for queue, model in published.THREADMILL_IN_LAB.items():
        assert model["changes"]["consumer_workers"] == 1, queue
        assert published.THREADMILL_DIFFERENCES[queue], queue
    solo = argv("celery_redis", **published.THREADMILL_IN_LAB["celery"]["changes"])
    assert solo[solo.index("--pool") + 1] == "solo" and solo[solo.index("--concurrency") + 1] == "1"
    one = argv("threadmill_redis", **published.THREADMILL_IN_LAB["threadmill"]["changes"])
    assert one[one.index("--workers") + 1] == one[one.index("--threads") + 1] == "1"
