"""The process a chaos trial kills: imports everything first, says ``go``, then runs one ``procos`` command.

Usage: ``python chaos_child.py '["snapshot", "export", ...]'``. The heavy imports (FAISS, pyarrow,
psycopg, zstandard, SpiffWorkflow) happen before ``go`` is printed, so the parent's random kill
moment falls inside the command itself, not inside interpreter start-up. The command runs through
``engine.cli.main`` exactly as ``procos`` runs it.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    argv = json.loads(sys.argv[1])
    import faiss  # noqa: F401
    import psycopg  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import zstandard  # noqa: F401

    import engine.api  # noqa: F401
    import engine.cli

    if argv and argv[0] in ("process", "instance", "task"):
        import SpiffWorkflow.bpmn  # noqa: F401

        import engine.workflow  # noqa: F401
    print("go", flush=True)
    engine.cli.main(argv)


if __name__ == "__main__":
    main()
