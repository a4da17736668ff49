"""Resident memory of a lab's parts, per backend: the queue's own servers, one worker, the web server."""

from __future__ import annotations

import pandas as pd

from helpers.instruments import cpu
from helpers.protocols.consumers import worker_pids
from helpers.stack import Lab


def memory(labs: dict[str, Lab]) -> pd.DataFrame:
    """RSS (MiB) per backend: the queue's own servers, one worker process (with its children: a prefork pool, a
    work horse), the web server (gunicorn and its workers), and what the backend needs running."""
    rows = []
    for b, lab in labs.items():
        servers = [lab.processes[s].pid for s in lab.queue.servers if s in lab.processes]
        workers = worker_pids(lab)[:1]
        rows.append({"backend": b, "servers_mb": cpu.rss_mb(servers), "worker_mb": cpu.rss_mb(workers),
                     "web_mb": cpu.rss_mb([lab.processes["web"].pid]), "servers": len(lab.queue.servers),
                     "worker_processes": len(worker_pids(lab))})
    return pd.DataFrame(rows).set_index("backend")
