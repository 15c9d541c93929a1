"""Migrate a schema_version 1 snapshot bundle to schema_version 2 (embeddings split into shards).

Usage: python scripts/migrations/migrate_snapshot_v1_to_v2.py SRC [--out DIR] [--shard-rows N] [--json]

SRC is a v1 bundle folder or .tar.zst; it is verified first and never modified. The v2 bundle is
written into DIR (default: the folder holding SRC) and verified; its path is printed. Exit code 0
on success, 1 with a one-line error (and a hint) otherwise. Same as ``procos snapshot migrate``.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", metavar="SRC", help="the schema_version 1 bundle (folder or .tar.zst)")
    parser.add_argument("--out", metavar="DIR", help="folder to write the v2 bundle into (default: next to SRC)")
    parser.add_argument("--shard-rows", type=int, default=None, help="rows per shard (default 100000)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    from engine.api import migrate_snapshot
    from engine.errors import ProcosError

    try:
        result = migrate_snapshot(args.src, args.out, shard_rows=args.shard_rows)
    except ProcosError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"Try: {exc.hint}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else result["path"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
