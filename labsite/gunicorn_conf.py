"""gunicorn settings the site is served with: a worker that has stopped serving exits at once.

A worker's normal interpreter teardown (garbage-collecting every module Django and the queue clients loaded) takes
about a second per worker on two cores, after the last request has been answered and the database connections
closed; `worker_exit` runs then, so skipping the teardown changes nothing a client sees. The control socket
gunicorn 23+ opens by default (~/.gunicorn/gunicorn.ctl, one path for every server on the machine) stays off.
"""

import logging
import os
import sys

control_socket_disable = True


def worker_exit(server, worker):
    """After a worker's normal end (gunicorn calls this while its sys.exit(0) propagates), close its database
    connections, flush its logs and end the process without the teardown; any other exit keeps its status."""
    ending = sys.exception()
    if not (isinstance(ending, SystemExit) and ending.code in (0, None)):
        return
    from django.db import connections

    connections.close_all()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
