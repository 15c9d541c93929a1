"""``python -m engine.cli``: the same as the ``procos`` command."""

from engine.cli import main

main()
