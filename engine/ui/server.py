"""How ``procos ui`` starts the panel: Streamlit on this package's ``app.py``, on embedded defaults.

Bound to 127.0.0.1 unless told otherwise; no usage statistics, no browser opened, no file watcher;
static serving on (bpmn-js from ``static/``); the upload limit from ``panel.yaml``; XSRF protection on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine.api import panel

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_argv(host: str, port: int) -> list[str]:
    """The command that serves the panel on ``host:port``."""
    limit = panel.panel_config()["upload_limit_mb"]
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.enableStaticServing", "true",
            "--server.maxUploadSize", str(limit), "--server.fileWatcherType", "none",
            "--server.runOnSave", "false", "--server.enableXsrfProtection", "true",
            "--client.toolbarMode", "minimal", "--client.showErrorDetails", "none",
            "--runner.magicEnabled", "false", "--global.developmentMode", "false", "--theme.base", "light"]


def run(host: str, port: int) -> None:
    """Replace this process with the Streamlit server (it runs until stopped)."""
    argv = streamlit_argv(host, port)
    os.execv(argv[0], argv)
