"""The production twins of the queue backends (helpers.stack.queues.pairs(), notebook 09's matrix): each names a
registered default with the same servers, cites the docs that recommend its settings, and comes after its default.
(Each twin on the real stack: tests/test_site_every_backend.py.)"""

from helpers.stack.queues import BACKENDS, all_names, names, pairs

TWINS = [name for name in pairs() if BACKENDS[name].setting == "production"]


def test_every_production_twin_comes_after_its_default_and_names_one_with_the_same_servers():
    order = pairs()
    assert TWINS and len(order) == len(set(order))
    for twin in TWINS:
        cls = BACKENDS[twin]
        default = BACKENDS.get(cls.production_of)
        assert default is not None and default.setting == "default" and default.has_worker, twin
        assert order.index(cls.production_of) < order.index(twin)
        assert default.servers == cls.servers, twin
        assert cls.recommended_by and all(url.startswith("https://") for _, url in cls.recommended_by), twin


def test_pairs_hold_every_backend_with_workers_defaults_first_and_leave_notebook_07s_nine_alone():
    with_workers = [name for name in all_names() if BACKENDS[name].has_worker]
    assert sorted(pairs()) == sorted(with_workers)
    settings = [BACKENDS[name].setting for name in pairs()]
    assert settings == sorted(settings)  # "default" < "production": every default before every twin
    assert "djtasks_immediate" in all_names() and "djtasks_immediate" not in pairs()
    assert len(names()) == 9
