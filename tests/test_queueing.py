"""The queueing model against values known from the literature."""

import math

import pytest

from helpers.analysis import queueing


@pytest.mark.parametrize("servers,load,expected", [
    (1, 0.5, 0.5),          # M/M/1: P(wait) = ρ
    (2, 1.0, 1 / 3),        # textbook: c=2, a=1
    (3, 2.0, 4 / 9),        # textbook: c=3, a=2
    (10, 8.0, 0.40918),     # Erlang C tables
])
def test_erlang_c_matches_known_values(servers, load, expected):
    assert queueing.erlang_c(servers, load) == pytest.approx(expected, rel=1e-4)


def test_erlang_c_is_one_at_and_beyond_saturation():
    assert queueing.erlang_c(4, 4.0) == 1.0
    assert queueing.erlang_c(4, 5.0) == 1.0


def test_mm1_response_time_is_exponential():
    rate, service = 8.0, 0.1  # μ = 10, response ~ Exp(μ - λ = 2)
    prediction = queueing.mmc(rate, service, 1)
    assert prediction.mean_response_ms == pytest.approx(1000 / 2)
    assert prediction.p50_response_ms == pytest.approx(1000 * math.log(2) / 2, rel=1e-6)
    assert prediction.p95_response_ms == pytest.approx(1000 * math.log(20) / 2, rel=1e-6)


def test_md1_simulation_matches_pollaczek_khinchine():
    rate, service = 7.0, 0.1  # ρ = 0.7
    rho = rate * service
    expected_wait_ms = 1000 * rho * service / (2 * (1 - rho))
    prediction = queueing.mdc(rate, service, 1, customers=40_000)
    assert prediction.mean_wait_ms == pytest.approx(expected_wait_ms, rel=0.08)
    assert prediction.p50_response_ms >= 100


def test_mdc_waits_less_than_mmc_and_both_saturate_at_c_over_s():
    rate, service, servers = 30.0, 0.1, 4
    assert queueing.saturation_rate(service, servers) == pytest.approx(40.0)
    md, mm = queueing.mdc(rate, service, servers), queueing.mmc(rate, service, servers)
    assert md.mean_wait_ms == pytest.approx(mm.mean_wait_ms / 2, rel=0.25)
    over = queueing.mdc(45.0, service, servers)
    assert math.isinf(over.p99_response_ms) and over.throughput == pytest.approx(40.0)


def test_predict_gives_one_row_per_model_and_rate():
    frame = queueing.predict([10, 20, 30], 0.1, 4)
    assert len(frame) == 6 and set(frame["model"]) == {"M/D/c", "M/M/c"}
    for _, group in frame.groupby("model"):
        assert group["p99_response_ms"].is_monotonic_increasing
