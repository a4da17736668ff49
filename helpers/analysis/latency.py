"""Latency statistics: percentiles always travel with their sample count, and are computed from pooled
samples (never averaged across runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd

PERCENTILES = (50, 90, 95, 99)


def summarize(frame: pd.DataFrame, value: str = "total_ms", by: str = "label") -> pd.DataFrame:
    """One row per group: n, mean, p50/p90/p95/p99 and max of `value` (milliseconds)."""
    rows = {}
    for key, group in frame.groupby(by, sort=False):
        values = group[value].dropna().to_numpy()
        row = {"n": len(values), "mean_ms": values.mean() if len(values) else np.nan}
        for p in PERCENTILES:
            row[f"p{p}_ms"] = np.percentile(values, p) if len(values) else np.nan
        row["max_ms"] = values.max() if len(values) else np.nan
        rows[key] = row
    summary = pd.DataFrame.from_dict(rows, orient="index")
    summary.index.name = by
    return summary


def percentile(frame: pd.DataFrame, label: str, p: float = 50, value: str = "total_ms") -> float:
    return float(np.percentile(frame.loc[frame["label"] == label, value].dropna(), p))


def bootstrap_ci(values, statistic=np.median, confidence: float = 0.95, seed: int = 1) -> tuple[float, float]:
    """Confidence interval of `statistic` over independent trials (not over requests of one run, which the
    queue correlates). Fewer than 3 trials give no interval (NaN, NaN)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 3 or np.ptp(values) == 0:
        return (np.nan, np.nan) if len(values) < 3 else (float(values[0]), float(values[0]))
    from scipy.stats import bootstrap

    result = bootstrap((values,), statistic, confidence_level=confidence, method="percentile",
                       rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def as_wrk_reports(service_us, run_s: float, connections: int) -> np.ndarray:
    """The samples as wrk (4.x) would print them. wrk does not print the latencies it measured: its
    `stats_correct()` first adds, for every sample at least twice the expected interval (its run time over the
    requests per connection), one synthetic sample per interval below it, down to the interval (a
    coordinated-omission correction for a closed loop). That is why wrk's mean latency times its throughput
    exceeds its connection count. A latency compared with wrk's goes through the same correction first."""
    samples = np.asarray(service_us, dtype=np.int64)
    per_connection = len(samples) // connections
    if per_connection == 0:
        return samples
    interval = int(run_s * 1e6) // per_connection
    added = [np.arange(s - interval, interval, -interval) for s in samples[samples >= 2 * interval]]
    return np.concatenate([samples, *added])
