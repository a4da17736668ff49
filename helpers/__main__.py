"""`python -m helpers bench NAME`: run a benchmark and print its figures as one JSON line."""

import argparse
from pathlib import Path

from helpers import bench, notebook_files


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers")
    commands = parser.add_subparsers(dest="command", required=True)
    bench_parser = commands.add_parser("bench", help="run one benchmark on the real stack")
    bench_parser.add_argument("name", choices=sorted(bench.BENCHMARKS))
    strip_parser = commands.add_parser("strip", help="strip notebook outputs but the verdict nbval compares")
    strip_parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.command == "bench":
        bench.run(args.name)
    elif args.command == "strip":
        notebook_files.strip(args.notebooks or notebook_files.notebooks())


if __name__ == "__main__":
    main()
