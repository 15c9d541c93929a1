"""``procos ui``: start the migration panel (a Streamlit web app over the same ``engine.api``)."""

from __future__ import annotations

import os
import sys

import click


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")
@click.option("--port", type=int, default=8501, show_default=True, help="Port to listen on.")
def ui(host: str, port: int) -> None:
    """Start the web panel: log in, export, import, approve, follow instances, catalogs, drills, reports.

    Users log in with the password set by procos user passwd NAME. Stores and snapshot locations come
    from PROCOS_HOME/panel.yaml (stores: [{name, uri}], locations: [...], upload_limit_mb) plus
    VECTOR_ENDPOINT. Runs until stopped (Ctrl-C).

    \b
    Example: procos ui --port 8501
    """
    from engine.api import panel

    cfg = panel.panel_config()  # a broken panel.yaml is reported here, before the server starts
    click.echo(f"panel on http://{host}:{port}  (stores: {len(cfg['stores'])}, locations: {len(cfg['locations'])}; "
               f"config {cfg['path']})", err=True)
    argv = [sys.executable, "-m", "engine.ui", "--host", host, "--port", str(port)]
    sys.stdout.flush()
    os.execv(argv[0], argv)
