"""``procos config show`` (the effective settings and where each came from) and ``procos completion``."""

from __future__ import annotations

import click

from .output import JSON_OPT, emit_json


@click.group("config")
def config_group() -> None:
    """The effective configuration: environment variables win over $PROCOS_HOME/config.yaml.

    \b
    Example: procos config show
    """


@config_group.command("show")
@JSON_OPT
def config_show(as_json: bool) -> None:
    """Print every setting, its value (secrets redacted) and its source (env, file or default).

    \b
    Example: procos config show --json
    """
    from engine import api

    from .tables import table

    shown = api.show_config()
    if as_json:
        emit_json(shown)
        return
    rows = [{"key": k, **v} for k, v in shown.items()]
    click.echo(table(rows, [("SETTING", lambda r: r["key"]), ("VALUE", lambda r: _show(r["value"])),
                            ("SOURCE", lambda r: r["source"]), ("VARIABLE", lambda r: r["env"])], widest=60))


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return str(value)


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    Example: procos completion bash > ~/.local/share/bash-completion/completions/procos
             (zsh: procos completion zsh > "${fpath[1]}/_procos"; fish: ... > ~/.config/fish/completions/procos.fish)
    """
    from click.shell_completion import get_completion_class

    from . import cli

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "procos", "_PROCOS_COMPLETE").source())
