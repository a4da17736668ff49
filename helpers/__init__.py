"""The lab's instruments, by role:

    stack/        what the lab starts and stops: the site under gunicorn, the SMTP server, the queue backends
                  (stack/queues/: one module per backend) and the servers they need
    instruments/  what measures the running stack from outside: timing client, load generator, wrk, browser
                  probe, enqueuer, task lifecycle, queue and CPU probes
    analysis/     what turns samples into figures: latency statistics, the queueing model
    experiments/  one module per notebook (named after it): its experiments, its key_figures() and its benchmark
    charts/       one module per notebook (named after it), plus the shared palette and chart types
    runs/         run folders and their metadata, the benchmark harness, papermill reruns, comparison, notebooks
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
