"""``procos drill history``: every DR drill's figures (RTO, RPO, restore time, recall), for trends."""

from __future__ import annotations

import click

from .output import JSON_OPT, emit_json


@click.group("drill")
def drill_group() -> None:
    """DR drills (the simulate_restore process): their history.

    \\b
    Example: procos drill history --json
    """


@drill_group.command("history")
@JSON_OPT
def drill_history(as_json: bool) -> None:
    """List every drill with passed, rto_seconds, rpo_seconds, restore_seconds and recall, oldest first.

    \\b
    Example: procos drill history --json
    """
    from engine import api

    from .tables import table

    found = api.drill_history()
    if as_json:
        emit_json(found)
        return
    click.echo(table(found, [("TIME", lambda d: d["time"][:19]), ("PASSED", lambda d: "yes" if d["passed"] else "no"),
                             ("RTO s", lambda d: d.get("rto_seconds")), ("RPO s", lambda d: d.get("rpo_seconds")),
                             ("RECORDS", lambda d: d.get("record_count")), ("REPORT", lambda d: d["report"])],
                     empty="no drills yet (procos process start simulate_restore ...)"))
