"""``procos user ...`` and ``procos audit``: the user store (thin shells over :mod:`engine.api.processes`)."""

from __future__ import annotations

import json
from typing import Any

import click

from .actor import actor_options
from .output import JSON_OPT, emit_json


def _api() -> Any:
    from engine.api import processes

    return processes


def _show_token(result: dict, as_json: bool, save_to: str | None = None) -> None:
    if save_to:
        _save(save_to, result["token"])
        result = {**result, "token": None, "token_file": save_to}
    if as_json:
        emit_json(result)
        return
    click.echo(f"user {result['user']} ({', '.join(result['roles']) or 'no roles'})")
    if save_to:
        click.echo(f"token saved in {save_to} (mode 600): use it with --token-file {save_to}")
        return
    click.echo(f"token {result['token']}")
    click.echo("This token is shown once and stored only as a hash: keep it in a file only you can read "
               "(chmod 600) and pass it with --token-file, or export PROCOS_TOKEN.", err=True)


def _save(path: str, token: str) -> None:
    """Write ``token`` into a new file readable by its owner only (never over an existing file)."""
    import os

    from engine.errors import InvalidInput

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(f"{path} exists; a token is never written over a file",
                           hint="remove it, or name another file") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")


SAVE_TOKEN = click.option("--save-token", metavar="FILE", type=click.Path(dir_okay=False),
                          help="Write the token into FILE (created mode 600) instead of printing it.")


@click.group("user")
def user_group() -> None:
    """Users, roles and personal tokens (the user store in PROCOS_HOME's state database).

    \b
    Example: procos user add alice --role Owner --json
    """


@user_group.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, metavar="ROLE", help="A role (repeatable): Owner, Approver, Admin...")
@SAVE_TOKEN
@actor_options
@JSON_OPT
def user_add(name: str, roles: tuple[str, ...], save_token: str | None, actor: dict, as_json: bool) -> None:
    """Create user NAME with its roles and print its token (shown once).

    Needs the Admin role; the very first user of an empty store must be an Admin.

    \b
    Example: procos user add bob --role Approver --save-token bob.token
    """
    _show_token(_api().add_user(name, list(roles), **actor), as_json, save_token)


@user_group.command("list")
@actor_options
@JSON_OPT
def user_list(actor: dict, as_json: bool) -> None:
    """List users and their roles (roles.yaml roles included).

    \b
    Example: procos user list --json
    """
    found = _api().list_users(**actor)
    if as_json:
        emit_json(found)
        return
    width = max([4, *(len(u["user"]) for u in found)])
    click.echo(f"{'USER':<{width}}  {'ROLES':<30}  PASSWORD  CREATED")
    for u in found:
        click.echo(f"{u['user']:<{width}}  {', '.join(u['roles']) or '-':<30}  "
                   f"{'set' if u['password'] else '-':<8}  {u['created_at']}")


@user_group.command("remove")
@click.argument("name")
@actor_options
@JSON_OPT
def user_remove(name: str, actor: dict, as_json: bool) -> None:
    """Remove user NAME (its token stops working at once). Needs Admin.

    \b
    Example: procos user remove bob
    """
    result = _api().remove_user(name, **actor)
    emit_json(result) if as_json else click.echo(f"removed user {name}")


@user_group.command("token")
@click.argument("name")
@SAVE_TOKEN
@actor_options
@JSON_OPT
def user_token(name: str, save_token: str | None, actor: dict, as_json: bool) -> None:
    """Issue a new token for NAME, revoking the old one (yourself, or any user as an Admin).

    \b
    Example: procos user token alice --json > alice.json
    """
    _show_token(_api().issue_token(name, **actor), as_json, save_token)


@user_group.command("passwd")
@click.argument("name")
@click.option("--password-file", type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              help="Read the password from FILE's first line instead of prompting.")
@actor_options
@JSON_OPT
def user_passwd(name: str, password_file: str | None, actor: dict, as_json: bool) -> None:
    """Set NAME's password for the web panel (prompted; stored as an argon2id hash).

    \b
    Example: procos user passwd alice
    """
    if password_file:
        with open(password_file, encoding="utf-8") as fh:
            password = fh.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    result = _api().set_password(name, password, **actor)
    emit_json(result) if as_json else click.echo(f"password of {name} set")


@click.command("audit")
@click.option("--limit", type=int, default=None, help="Only the last N entries.")
@actor_options
@JSON_OPT
def audit(limit: int | None, actor: dict, as_json: bool) -> None:
    """Show refusals and user changes (who, what, why). Needs Admin.

    \b
    Example: procos audit --limit 20
    """
    entries = _api().audit_log(limit=limit, **actor)
    if as_json:
        emit_json(entries)
        return
    for e in entries:
        rest = {k: v for k, v in e.items() if k not in ("time", "kind", "by")}
        click.echo(f"{e['time']}  {e['kind']:<13} {e.get('by') or '-':<12} {json.dumps(rest, sort_keys=True)}")
