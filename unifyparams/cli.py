"""The ``unifyparams`` command line.

    $ unifyparams conformance [--backend torch] [-k access] [--report reports/]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="unifyparams", description="One interface for NN parameters.")
    parser.add_argument("command", choices=["conformance"], help="what to run")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "conformance":
        from .conformance.runner import main as conformance_main

        return conformance_main(rest)
    parser.error(f"unknown command {command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
