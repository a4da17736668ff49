"""The job ledger's account (labsite/ledger.py, table labsite_emailjob), read in the site's own database: the SQLite
file or the run's PostgreSQL server, whichever the site's settings use (helpers.stack.site_database)."""

from __future__ import annotations

from helpers.stack.site_database import SiteDatabase

LEDGER_STATES = ("pending", "sending", "delivered", "failed")
COUNTERS = ("uncertain_attempts", "reenqueued", "attempts", "confirmed_by_provider", "lease_overruns",
            "enqueue_failures")


class LedgerReader:
    """Read-only counts of the ledger's jobs in `database`."""

    def __init__(self, database: SiteDatabase):
        self.database = database

    def jobs(self, recipients_like: str = "%") -> dict[str, int]:
        """The jobs whose recipient matches `recipients_like` (SQL LIKE): how many in all and per state, plus the
        sums of re-enqueues, attempts, attempts of unknown outcome, sends the provider confirmed, sends that finished
        after their lease (lease_overruns) and enqueues that raised (enqueue_failures). `failed` counts the jobs
        that ended failed (a permanent refusal, or out of attempts)."""
        sums = ", ".join(f"sum({counter})" for counter in COUNTERS)
        rows = self.database.query(f'select state, count(*), {sums} from labsite_emailjob where "to" like ? '
                                   "group by state", (recipients_like,))
        found = dict.fromkeys(("jobs", *LEDGER_STATES, *COUNTERS), 0)
        for state, count, *counted in rows:
            found[state] = count
            found["jobs"] += count
            for counter, value in zip(COUNTERS, counted, strict=True):
                found[counter] += int(value or 0)
        return found

    def states(self, recipients_like: str = "%") -> dict[str, str]:
        """Each matching job's state, by recipient (one read for a whole episode, message by message)."""
        rows = self.database.query('select "to", state from labsite_emailjob where "to" like ?', (recipients_like,))
        return {to: state for to, state in rows}
