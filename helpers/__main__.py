"""`python -m helpers bench NAME [-p NAME VALUE]` (one JSON line of figures), `run NOTEBOOK... -p NAME VALUE`
(papermill reruns), `strip` (notebook outputs but the verdict)."""

import argparse
from pathlib import Path

from helpers.runs import bench, notebooks, rerun


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers")
    commands = parser.add_subparsers(dest="command", required=True)
    bench_parser = commands.add_parser("bench", help="run one benchmark on the real stack")
    bench_parser.add_argument("name", choices=sorted(bench.discover()))
    bench_parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                              help="override one of the benchmark's parameters")
    run_parser = commands.add_parser("run", help="rerun notebooks headlessly with papermill into a run folder")
    run_parser.add_argument("notebooks", nargs="*", type=Path, help="default: every numbered notebook")
    run_parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    run_parser.add_argument("--quick", action="store_true", help="quick mode, as in CI")
    strip_parser = commands.add_parser("strip", help="strip notebook outputs but the verdict nbval compares")
    strip_parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    parameters = {name: rerun.parse_value(value) for name, value in getattr(args, "parameter", [])}
    if args.command == "bench":
        bench.run(args.name, parameters)
    elif args.command == "run":
        chosen = args.notebooks or [p for p in notebooks.notebooks() if not p.name.startswith("00-")]
        rerun.rerun([p.resolve() for p in chosen], parameters, quick=args.quick)
    elif args.command == "strip":
        notebooks.strip(args.notebooks or notebooks.notebooks())


if __name__ == "__main__":
    main()
