"""helpers.protocols.enqueue_cost's arithmetic on numbers worked by hand: the median's order-statistic interval and
the check that a figure is known better than itself. The procedure on a real lab: tests/test_queue_semantics.py."""

import math

import numpy as np
import pytest

from helpers.protocols import enqueue_cost


def test_the_median_interval_of_nine_values_is_their_second_and_eighth():
    # binomial(9, 1/2): P(B <= 1) = 10/512 = 0.0195 <= 0.025 < P(B <= 2) = 46/512, so ranks 2 and 9 + 1 - 2 = 8
    assert enqueue_cost.median_ci([9, 1, 8, 2, 7, 3, 6, 4, 5]) == (5.0, 2.0, 8.0)


def test_six_values_are_the_fewest_with_a_95_percent_interval():
    # P(B <= 0) = 1/64 for six values (the whole range covers 96.9 %), 1/32 for five: not enough
    assert enqueue_cost.median_ci([1, 2, 3, 4, 5, 6]) == (3.5, 1.0, 6.0)
    median, low, high = enqueue_cost.median_ci([1, 2, 3, 4, 5])
    assert median == 3.0 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(x) for x in enqueue_cost.median_ci([]))


def test_the_interval_of_2000_values_spans_the_ranks_the_normal_approximation_gives():
    values = np.arange(1, 2001, dtype=float)  # value = rank
    median, low, high = enqueue_cost.median_ci(values)
    half_width = 1.96 * math.sqrt(2000) / 2  # 43.8 ranks either side of 1000.5
    assert median == 1000.5 and abs(low - (1000.5 - half_width)) <= 1.5 and abs(high - (1000.5 + half_width)) <= 1.5
    assert high - low == pytest.approx(2 * half_width, abs=2)


def test_an_interval_wider_than_its_median_or_a_non_positive_figure_is_flagged():
    figures = {}
    for name, values in {"inprocess": [100, 101, 99, 102, 98, 100, 101],  # 4 wide for 100: precise
                         "in_request": [1, 2, 3, 4, 5, 6, 7, 8, 9],  # 2 to 8 (6 wide) for a median of 5: not
                         "in_request_stopped": [-3, -1, -2, -1, 0, -2, -1]}.items():  # negative: not
        figures.update(enqueue_cost.with_ci(name, values))
    assert figures["in_request_ci_high_us"] - figures["in_request_ci_low_us"] > figures["in_request_us"]
    assert enqueue_cost.checks(figures) == {"inprocess": True, "in_request": False, "in_request_stopped": False}
    assert not enqueue_cost.precise(5.0, math.nan, math.nan)  # too few values for an interval
