"""`python -m helpers bench NAME [-p NAME VALUE]` (one JSON line of figures), `run NOTEBOOK... -p NAME VALUE`
(papermill reruns; exit status 1 when a claim failed), `report [--check] [--promote RUN_DIR]` (the README's
findings, docs/findings.md and docs/report/ from data/reference/, and the latest run's HTML report), `strip`
(notebook outputs but the verdict), `time-test [--busy-core]` (make test in a fresh clone, timed into
data/reference/timings.json)."""

import argparse
import sys
from pathlib import Path

from helpers.runs import bench, compare, notebooks, rerun


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers")
    commands = parser.add_subparsers(dest="command", required=True)
    bench_parser = commands.add_parser("bench", help="run one benchmark on the real stack")
    bench_parser.add_argument("name", choices=bench.names())
    bench_parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                              help="override one of the benchmark's parameters")
    run_parser = commands.add_parser("run", help="rerun notebooks headlessly with papermill into a run folder")
    run_parser.add_argument("notebooks", nargs="*", type=Path, help="default: every numbered notebook")
    run_parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    run_parser.add_argument("--quick", action="store_true", help="quick mode, as in CI")
    report_parser = commands.add_parser("report", help="the README's findings and charts from data/reference/, and "
                                        "an HTML report of the latest run")
    report_parser.add_argument("--check", action="store_true",
                               help="write nothing; exit 1 when the README's findings or charts are stale")
    report_parser.add_argument("--promote", type=Path, metavar="RUN_DIR",
                               help="first make a full-mode rerun (make run) the reference: its summary, run.json "
                                    "files, charts and executed notebooks into data/reference/")
    report_parser.add_argument("--only", nargs="+", metavar="NOTEBOOK",
                               help="with --promote: only these notebooks of the run (e.g. 01-blocking-vs-deferred)")
    strip_parser = commands.add_parser("strip", help="strip notebook outputs but the verdict nbval compares")
    strip_parser.add_argument("notebooks", nargs="*", type=Path)
    time_parser = commands.add_parser("time-test", help="time make test in a fresh clone of HEAD, set-up included, "
                                      "into data/reference/timings.json")
    time_parser.add_argument("--busy-core", action="store_true", help="with `yes > /dev/null` running beside it")
    args = parser.parse_args(argv)
    parameters = {name: rerun.parse_value(value) for name, value in getattr(args, "parameter", [])}
    if args.command == "bench":
        bench.run(args.name, parameters)
    elif args.command == "run":
        chosen = args.notebooks or [p for p in notebooks.notebooks() if not p.name.startswith("00-")]
        run_dir = rerun.rerun([p.resolve() for p in chosen], parameters, quick=args.quick)
        if not rerun.succeeded(compare.load_summary(run_dir / "summary.json")):
            sys.exit(1)
    elif args.command == "report":
        from helpers.runs import report

        if args.promote:
            for path in report.promote(args.promote, only=args.only):
                print(f"promoted {report.shown_path(path)}")
        sys.exit(report.main(check=args.check))
    elif args.command == "time-test":
        from helpers.runs import time_test

        sys.exit(time_test.main(busy_core=args.busy_core))
    elif args.command == "strip":
        notebooks.strip(args.notebooks or notebooks.notebooks())


if __name__ == "__main__":
    main()
