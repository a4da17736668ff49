"""The README's first screen, read from the reference's figures: the seed article's comparison table answered, and
"Which setup when", a decision guide whose every line cites the figures that choose it.

Why a module of its own: each cell and each choice is a function of the figures (report.Figures reads them, a range
where several runs hold one), so a run in which another backend wins writes another guide; tests/test_guide.py flips
figures and sees the choice change.
"""

from __future__ import annotations

from collections.abc import Callable

from helpers.charts.common import counted, number

QUEUES = "07-which-queue"
SETUPS = "09-which-setup"
# notebook 09's choices the README shows (the others are in the notebook): what 07's defaults cannot answer
SETUP_NEEDS = ("Lose nothing when a worker dies, pick up fastest", "You run RabbitMQ and must lose nothing",
               "You run PostgreSQL and must lose nothing")
DESIGNS = "05-faults"
ASYNC = "08-does-async-fix-it"
BROWSER = "04-what-the-user-sees"
BROKERS = {"redis", "rabbitmq"}  # a server a queue needs besides the database the site already has


def _backend(name: str):
    from helpers.stack import queues

    return queues.backend_class(name)


def _label(name: str) -> str:
    try:
        return _backend(name).label
    except KeyError:
        return name


def _servers(name: str) -> set[str]:
    try:
        return set(_backend(name).servers)
    except KeyError:
        return set()


def _and(items: list[str]) -> str:
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items) or "none"


# -- the article's table ---------------------------------------------------------------------------------------------


# notebook 08's variant -> the pattern as the article's table names it
ARTICLE_PATTERNS = {"sync": "Send in a sync view (gunicorn)", "async": "Send in an async view (uvicorn, aiosmtplib)",
                    "deferred_gunicorn": "Deferred: enqueue, answer 202"}
ARTICLE_COLUMNS = ["Pattern", "Server blocking", "Response time (p50)", "User-perceived speed", "Verdict"]


def article_table(f, link: Callable[[str], str]) -> list[list[str]]:
    """The article's comparison, one row per pattern: blocking send in a sync view, the same send in an async view,
    deferred to a queue. Server blocking and response time from notebook 08 (its article_columns' rules: a pattern
    blocks when it saturates at its slots / S; the user waits when the p50 reaches the SMTP delay), user-perceived
    speed from notebook 04's browser (TTFB, INP, when the email shows as sent)."""
    fig = f.measured.notebooks[ASYNC]["figures"]
    delay = fig["smtp_delay_ms"]
    n08, n04 = link(ASYNC), link(BROWSER)

    def blocks(variant: str) -> bool:
        bound = fig.get(f"{variant}_slot_bound_rps")  # only a variant with a fixed budget of slots has one
        ran_away, rate = bool(fig[f"{variant}_ran_away"]), fig[f"{variant}_saturation_rps"]
        return ran_away and bound is not None and rate <= 1.15 * bound

    def server(variant: str) -> str:
        rate = f(ASYNC, f"{variant}_saturation_rps", "requests/s")
        if blocks(variant):
            return f"yes: capped at {rate}, its workers / S ({n08})"
        verb = "saturates at" if fig[f"{variant}_ran_away"] else "kept up with the most offered,"
        return f"no: {verb} {rate} ({n08})"

    def response(variant: str) -> str:
        waits = fig[f"{variant}_p50_ms"] >= delay
        return (f"{'waits for the send' if waits else 'does not wait'}: {f(ASYNC, f'{variant}_p50_ms', 'ms')} "
                f"with a {number(delay)} ms SMTP provider ({n08})")

    def verdict(variant: str) -> str:
        waits, held = fig[f"{variant}_p50_ms"] >= delay, blocks(variant)
        if held and waits:
            return "Slow and capped: the user waits and the server runs out of workers."
        if waits:
            return "Frees the server, not the user: the wait is the same."
        return "Fast and uncapped; the work still happens later, and can be lost (see below)."

    b = f.measured.notebooks.get(BROWSER, {}).get("figures", {})
    user = {
        "sync": (f"TTFB {f(BROWSER, 'ttfb_blocking_ms', 'ms')} (form post); INP "
                 f"{f(BROWSER, 'inp_blocking_ms', 'ms')} with fetch(), {f(BROWSER, 'inp_xhr_blocking_ms', 'ms')} "
                 f"with a synchronous request ({n04})") if b else "not measured",
        "async": (f"not in the browser: its answer comes after {f(ASYNC, 'async_p50_ms', 'ms')}, like the blocking "
                  f"send's ({n08})"),
        "deferred_gunicorn": (f"TTFB {f(BROWSER, 'ttfb_deferred_ms', 'ms')}; INP "
                              f"{f(BROWSER, 'inp_deferred_ms', 'ms')}; the email shows as sent "
                              f"{f(BROWSER, 'delivered_deferred_ms', 'ms')} after the click, "
                              f"against {f(BROWSER, 'delivered_blocking_ms', 'ms')} blocking ({n04})") if b
        else "not measured",
    }
    return [[name, server(v), response(v), user[v], verdict(v)] for v, name in ARTICLE_PATTERNS.items()
            if fig.get(f"{v}_saturation_rps") is not None]


# -- which setup when ------------------------------------------------------------------------------------------------


def _kills(fig: dict, b: str) -> str:
    return (f"{number(fig[f'{b}_lost_on_kill'])} lost / {number(fig[f'{b}_duplicated_on_kill'])} duplicated / "
            f"{number(fig[f'{b}_stuck_on_kill'])} stuck in {counted(fig[f'{b}_kills'], 'kill')}")


def _ledger(f, backends: list[str] | None = None) -> str | None:
    """Notebook 05's ledger design on `backends` (every backend it measured by default): lost / duplicated of
    requested, summed; None without notebook 05."""
    if DESIGNS not in f.measured.notebooks:
        return None
    fig = f.measured.notebooks[DESIGNS]["figures"]
    on = [b for b in fig["backends"] if backends is None or b in backends]
    if not on or any(fig.get(f"{b}_ledger_requested") is None for b in on):
        return None
    total = {k: sum(fig[f"{b}_ledger_{k}"] for b in on) for k in ("lost", "duplicated", "requested")}
    return (f"the ledger lost {number(total['lost'])} and duplicated {number(total['duplicated'])} of "
            f"{number(total['requested'])} under every fault on {_and([_label(b) for b in on])}")


def _ledger_clean(f) -> bool:
    fig = f.measured.notebooks.get(DESIGNS, {}).get("figures", {})
    return bool(fig) and all(fig.get(f"{b}_ledger_lost") == 0 and fig.get(f"{b}_ledger_duplicated") == 0
                             for b in fig["backends"])


def _rank(fig: dict, backends: list[str]) -> list[str]:
    """Backends by what their killed workers cost (lost, then duplicated, then stuck), then by pickup after idle."""
    return sorted(backends, key=lambda b: (fig[f"{b}_lost_on_kill"], fig[f"{b}_duplicated_on_kill"],
                                           fig[f"{b}_stuck_on_kill"], fig[f"{b}_pickup_request_to_smtp_p50_ms"]))


def _redis(f, fig: dict, workers: list[str], n07: str, n05: str) -> str | None:
    from helpers.stack.queues import AT_LEAST_ONCE_AFTER_THE_POP

    on_redis = [b for b in workers if "redis" in _servers(b)]
    if not on_redis:
        return None
    best, *others = _rank(fig, on_redis)
    worst = max(fig[f"{b}_lost_on_kill"] for b in on_redis)
    cost = f"{_label(best)} ({_backend(best).delivery}): {_kills(fig, best)}"
    compare = f"; the other Redis backends lost up to {number(worst)}" if others else ""
    if fig[f"{best}_lost_on_kill"] == 0:
        pop = ("; its pop can still lose a task to a kill that lands before it is recorded "
               "([backends](docs/backends.md))" if _backend(best).delivery == AT_LEAST_ONCE_AFTER_THE_POP else "")
        line = f"→ **{cost}**{pop}{compare} ({n07})."
    else:
        line = f"→ no Redis backend kept every email; fewest lost: {cost}{compare} ({n07})."
    ledger = _ledger(f, [b for b in f.measured.notebooks.get(DESIGNS, {}).get("figures", {}).get("backends", [])
                         if "redis" in _servers(b)])
    if ledger:
        d = f.measured.notebooks[DESIGNS]["figures"]
        twice = {b: d.get(f"{b}_production_duplicated") or 0 for b in d["backends"] if "redis" in _servers(b)}
        twice = {b: n for b, n in twice.items() if n}
        line += (f" Under notebook 05's faults the production settings (acks late) sent "
                 f"{_and([f'{counted(n, 'email')} twice on {_label(b)}' for b, n in twice.items()])}, while "
                 f"{ledger} ({n05})." if twice else f" Under notebook 05's faults {ledger} ({n05}).")
    return "**Have Redis and must lose nothing when a worker dies** " + line


def _no_broker(f, fig: dict, workers: list[str], n07: str, n05: str) -> str | None:
    local = [b for b in workers if not _servers(b) & BROKERS]
    if not local:
        return None
    ranked = _rank(fig, local)
    kept = [b for b in ranked if fig[f"{b}_lost_on_kill"] == 0]
    losses = "; ".join(f"{_label(b)} {_kills(fig, b)}" for b in ranked)
    ledger = _ledger(f, [b for b in f.measured.notebooks.get(DESIGNS, {}).get("figures", {}).get("backends", [])
                         if not _servers(b) & BROKERS])
    if kept:
        head = f"→ **{_label(kept[0])}**, which lost nothing when its workers were killed"
    elif ledger and _ledger_clean(f):
        fastest = min(ranked, key=lambda b: fig.get(f"{b}_tuned_pickup_request_to_smtp_p50_ms")
                      or fig[f"{b}_pickup_request_to_smtp_p50_ms"])
        pickup = fig.get(f"{fastest}_tuned_pickup_request_to_smtp_p50_ms") or fig[
            f"{fastest}_pickup_request_to_smtp_p50_ms"]
        head = (f"→ **the ledger** ([recipe](docs/recipe/README.md)) on a queue in your database, every one of "
                f"which lost emails to killed workers; quickest pickup after idle: {_label(fastest)}, "
                f"{number(pickup)} ms (p50, tuned where it has a knob)")
    else:
        head = f"→ {_label(ranked[0])}, the fewest lost; every queue in the database lost emails to killed workers"
    return (f"**No broker, only your database** {head} ({losses}; {n07})"
            + (f"; {ledger} ({n05})." if ledger else "."))


def _transaction(fig: dict, backends: list[str], n07: str) -> str | None:
    trials = fig["tx_trials"]
    inside = [b for b in backends if fig[f"{b}_runs_after_rollback"] == 0 and fig[f"{b}_runs_before_commit"] == 0]
    ran = [b for b in backends if b not in inside]
    early = sum(fig.get(f"{b}_on_commit_ran_before_commit") or 0 for b in backends)
    on_commit = (f"elsewhere enqueue with `transaction.on_commit`: no task ran before its commit on any of the "
                 f"{len(backends)} backends" if early == 0 else
                 f"`transaction.on_commit` let {counted(early, 'task')} run before its commit")
    if not inside:
        return (f"**Need the task inside the transaction** → no backend kept it there (a rolled-back task ran on "
                f"every one); {on_commit} ({n07}).")
    return (f"**Need the task inside the transaction** → **{_and([_label(b) for b in inside])}**: a rolled-back "
            f"task ran 0 of {trials} times, where it ran on {len(ran)} other backends; {on_commit} ({n07}).")


def _async(f, n08: str) -> str | None:
    fig = f.measured.notebooks[ASYNC]["figures"]
    ratio, waits = fig["async_over_sync_saturation"], fig["async_p50_ms"] >= fig["smtp_delay_ms"]
    cost = (f"{f(ASYNC, 'async_saturation_rps', 'requests/s')}, {f(ASYNC, 'async_over_sync_saturation', 'x')} the "
            f"sync workers' {f(ASYNC, 'sync_saturation_rps', 'requests/s')}")
    wait = (f"It does not fix the wait: its p50 is {f(ASYNC, 'async_p50_ms', 'ms')} with a "
            f"{number(fig['smtp_delay_ms'])} ms provider, deferred {f(ASYNC, 'deferred_p50_ms', 'ms')}"
            + ("; when the provider fails, the user is told (5xx), where a deferred send answered 202 and failed "
               "later" if fig.get("fault_in_request_all_5xx") and fig.get("fault_deferred_accepted_then_failed")
               else "") if waits else
            f"Its p50 is {f(ASYNC, 'async_p50_ms', 'ms')}, below the {number(fig['smtp_delay_ms'])} ms provider")
    if ratio >= 5:
        return f"**Only need to free the server thread** → **an async view**: it saturates at {cost}. {wait} ({n08})."
    return (f"**Only need to free the server thread** → an async view gained little here ({cost}); defer instead. "
            f"{wait} ({n08}).")


def _fastest(fig: dict, workers: list[str], n07: str) -> str:
    from helpers.experiments.which_setup import PICKUP_TIE, as_quick

    def pickup(b: str) -> float:
        return fig[f"{b}_pickup_request_to_smtp_p50_ms"]

    first, slowest = min(workers, key=pickup), max(workers, key=pickup)
    ties = as_quick(pickup, first, workers)
    tied = "; as quick within the {:g}× a pickup moves between runs: {}".format(
        PICKUP_TIE, ", ".join(f"*{_label(b)}* {number(pickup(b))} ms" for b in ties)) if ties else ""
    return (f"**The email must leave soon after an idle spell** → **{_label(first)}**: picked up "
            f"{number(pickup(first))} ms after the request (p50, default settings){tied}; against "
            f"{number(pickup(slowest))} ms on {_label(slowest)} ({n07}).")


def which_setup_when(f, link: Callable[[str], str]) -> list[str]:
    """The decision guide's lines, each chosen and cited from the figures; a notebook missing from the run drops
    the lines it decides."""
    notebooks = f.measured.notebooks
    lines = []
    if DESIGNS in notebooks:
        ledger = _ledger(f)
        d = notebooks[DESIGNS]["figures"]
        plain = sum(d.get(f"{b}_plain_lost") or 0 for b in d["backends"])
        if ledger and _ledger_clean(f):
            lines.append(f"**Must lose no email, whatever the queue** → **the outbox/ledger** "
                         f"([recipe](docs/recipe/README.md)): {ledger}, where plain enqueues lost "
                         f"{counted(plain, 'email')} ({link(DESIGNS)}).")
        elif ledger:
            lines.append(f"**Must lose no email** → nothing measured here did: {ledger} ({link(DESIGNS)}).")
    if QUEUES in notebooks:
        fig = notebooks[QUEUES]["figures"]
        backends = fig["backends"]
        workers = [b for b in backends if fig[f"{b}_kills"]]
        n07, n05 = link(QUEUES), link(DESIGNS)
        lines += [line for line in (_redis(f, fig, workers, n07, n05), _no_broker(f, fig, workers, n07, n05),
                                    _transaction(fig, backends, n07)) if line]
        lines.append(_fastest(fig, workers, n07))
    if SETUPS in notebooks:
        lines += _setups(notebooks[SETUPS]["figures"], link(SETUPS))
    if ASYNC in notebooks:
        lines.append(_async(f, link(ASYNC)))
    return lines


def _setups(fig: dict, n09: str) -> list[str]:
    """Notebook 09's guide (helpers.experiments.which_setup.guide, default and production settings) for SETUP_NEEDS."""
    from helpers.experiments import which_setup

    return [f"**{c.need}** (default or production settings) → **{fig[f'{c.backend}_label']}**: {c.because} ({n09})."
            if c.backend else f"**{c.need}** → {c.because} ({n09})."
            for c in which_setup.guide(fig) if c.need in SETUP_NEEDS]
