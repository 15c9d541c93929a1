"""``python -m engine.ui [--host H] [--port P]``: what ``procos ui`` runs (see :mod:`engine.ui.server`)."""

from __future__ import annotations

import argparse
import sys

from engine.errors import ProcosError

from .server import run


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.ui")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8501)
    args = parser.parse_args(argv)
    try:
        run(args.host, args.port)
    except ProcosError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"Try: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
