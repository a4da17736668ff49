"""What queueing theory predicts for the blocking endpoint: c gunicorn workers, each busy S seconds per
request, arrivals at rate λ. Saturation at λ = c/S; below it the wait grows as Erlang C says.

M/M/c (exponential service) is analytic; the blocking email's service time is nearly constant, so M/D/c
fits better: its mean wait is about half M/M/c's (exact for c = 1, Pollaczek-Khinchine), and its percentiles
come from a discrete-event simulation with ciw.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import ciw
import numpy as np
import pandas as pd
from scipy.optimize import brentq


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival has to wait (offered load a = λS, in Erlangs), via the stable Erlang B recursion."""
    if offered_load >= servers:
        return 1.0
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    utilisation = offered_load / servers
    return blocking / (1 - utilisation * (1 - blocking))


def saturation_rate(service_s: float, servers: int) -> float:
    return servers / service_s


@dataclass
class Prediction:
    model: str
    rate: float
    utilisation: float
    p_wait: float
    throughput: float
    mean_wait_ms: float
    mean_response_ms: float
    p50_response_ms: float
    p95_response_ms: float
    p99_response_ms: float


def _unstable(model: str, rate: float, service_s: float, servers: int) -> Prediction:
    inf = math.inf
    return Prediction(model, rate, rate * service_s / servers, 1.0, saturation_rate(service_s, servers),
                      inf, inf, inf, inf, inf)


def mmc(rate: float, service_s: float, servers: int) -> Prediction:
    """M/M/c: response = wait + Exp(μ) service; wait is 0 with prob 1-C, else Exp(cμ-λ)."""
    if rate * service_s >= servers:
        return _unstable("M/M/c", rate, service_s, servers)
    mu = 1 / service_s
    theta = servers * mu - rate
    c_wait = erlang_c(servers, rate * service_s)

    def cdf(t):
        no_wait = 1 - math.exp(-mu * t)
        if abs(theta - mu) < 1e-12:
            waited = 1 - math.exp(-mu * t) * (1 + mu * t)
        else:
            waited = 1 - (mu * math.exp(-theta * t) - theta * math.exp(-mu * t)) / (mu - theta)
        return (1 - c_wait) * no_wait + c_wait * waited

    def quantile(p):
        return brentq(lambda t: cdf(t) - p, 0, 1e4 * service_s + 1e3 / theta) * 1e3

    mean_wait = c_wait / theta
    return Prediction("M/M/c", rate, rate * service_s / servers, c_wait, rate, mean_wait * 1e3,
                      (mean_wait + service_s) * 1e3, quantile(0.5), quantile(0.95), quantile(0.99))


def mdc(rate: float, service_s: float, servers: int, customers: int = 20_000, seed: int = 1) -> Prediction:
    """M/D/c by simulation (ciw): Poisson arrivals, constant service, FCFS, c servers."""
    if rate * service_s >= servers:
        return _unstable("M/D/c", rate, service_s, servers)
    network = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(rate=rate)],
                                 service_distributions=[ciw.dists.Deterministic(value=service_s)],
                                 number_of_servers=[servers])
    ciw.seed(seed)
    simulation = ciw.Simulation(network)
    horizon = customers / rate
    simulation.simulate_until_max_time(horizon)
    warm = horizon * 0.1
    records = [r for r in simulation.get_all_records() if r.arrival_date > warm]
    response = np.array([r.exit_date - r.arrival_date for r in records]) * 1e3
    waits = np.array([r.waiting_time for r in records]) * 1e3
    p50, p95, p99 = np.percentile(response, [50, 95, 99])
    return Prediction("M/D/c", rate, rate * service_s / servers, float((waits > 1e-9).mean()), rate,
                      float(waits.mean()), float(response.mean()), float(p50), float(p95), float(p99))


def predict(rates, service_s: float, servers: int, models=("M/D/c", "M/M/c")) -> pd.DataFrame:
    """One row per (model, rate): the curves the notebooks overlay on the measurements."""
    solve = {"M/M/c": mmc, "M/D/c": mdc}
    return pd.DataFrame([asdict(solve[m](float(r), service_s, servers)) for m in models for r in rates])


# -- Past c/S: what bounds a server that holds no worker per request (notebook 08) ----------------------------------
# c/S is one case of the utilisation law: a resource k that serves s_k requests at once, each for D_k seconds,
# completes at most s_k / D_k per second. Worker slots are such a resource (s = c, D = S); so are the cores (D = CPU
# seconds per request) and the SMTP server's one event-loop thread. Whichever bound is lowest is the capacity.


def executor_threads() -> int:
    """How many threads asyncio's default executor runs in a process on this machine: ThreadPoolExecutor's default
    size, min(32, CPUs + 4). sync_to_async(thread_sensitive=False) sends there: per process, that many at once."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor() as pool:
        return pool._max_workers


def bottleneck(resources: dict[str, tuple[float, float]]) -> tuple[float, str]:
    """`resources`: name -> (seconds of it one request takes, how many requests it serves at once). Returns the
    lowest bound s/D and the resource that sets it (the utilisation law); resources with no demand are left out."""
    bounds = {name: servers / demand for name, (demand, servers) in resources.items() if demand > 0}
    name = min(bounds, key=bounds.get)
    return bounds[name], name
