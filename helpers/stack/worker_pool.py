"""N copies of one worker command as one process, for a worker that runs one task at a time and has no pool of its
own (django-tasks-db's db_worker): the lab starts, stops and kills the pool as it does any consumer process.

    python helpers/stack/worker_pool.py N -- COMMAND...

Run by path, not as a module: only the standard library loads (the package would load pandas), so the pool adds
a few MB to the workers' memory, no more. SIGINT and SIGTERM go on to every copy, and the pool exits once all
have (1 if any failed); each copy gets SIGTERM if the pool dies (PR_SET_PDEATHSIG), so none outlives it.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_pool() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--" or int(argv[0]) < 1:
        print(__doc__, file=sys.stderr)
        return 2
    copies = [subprocess.Popen(argv[2:], preexec_fn=die_with_pool) for _ in range(int(argv[0]))]

    def pass_on(signum, frame):
        for copy in copies:
            if copy.poll() is None:
                copy.send_signal(signum)

    signal.signal(signal.SIGINT, pass_on)
    signal.signal(signal.SIGTERM, pass_on)
    codes = [copy.wait() for copy in copies]
    return 0 if not any(codes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
