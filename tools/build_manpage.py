"""Generate the man page ``docs/man/procos.1`` from the CLI's own help (every command, its options, examples).

Run ``python tools/build_manpage.py`` after changing a command; ``--check`` exits 1 when the file on disk
differs from what would be generated. The wheel installs the page as ``share/man/man1/procos.1``
(``man procos`` after a system install; ``man -l docs/man/procos.1`` from a checkout).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "man" / "procos.1"


def esc(text: str) -> str:
    """Escape text for roff: backslashes, and a leading dot or apostrophe."""
    text = text.replace("\\", "\\e")
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line for line in text.splitlines())


def walk(group: click.Group, ctx: click.Context, path: list[str]):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        if isinstance(cmd, click.Group):
            yield path + [name], cmd
            yield from walk(cmd, click.Context(cmd, parent=ctx, info_name=name), path + [name])
        else:
            yield path + [name], cmd


def help_text(cmd: click.Command) -> str:
    import inspect

    text = inspect.cleandoc(cmd.help or "").replace("\b\n", "")
    return "\n".join(line.rstrip() for line in text.splitlines())


def render() -> str:
    from engine.cli import cli
    from engine.errors import EXIT_CODES

    ctx = click.Context(cli, info_name="procos")
    out = ['.TH PROCOS 1 "" "procos-knowledge" "ProcOS Knowledge Engine"', ".SH NAME",
           "procos \\- lift and shift a vector knowledge layer with proof", ".SH SYNOPSIS",
           ".B procos", "[\\-\\-debug] [\\-\\-token\\-file FILE] [\\-q|\\-v] COMMAND [ARGS]...", ".SH DESCRIPTION",
           esc(help_text(cli)), ".SH COMMANDS"]
    for path, cmd in walk(cli, ctx, []):
        usage = " ".join(p for p in cmd.collect_usage_pieces(ctx))
        out += [f".SS procos {' '.join(path)} {esc(usage)}".rstrip(), esc(help_text(cmd)) or "(no description)"]
        options = [p for p in cmd.params if isinstance(p, click.Option) and not p.hidden]
        for opt in options:
            record = opt.get_help_record(ctx)
            if record:
                out += [".TP", f".B {esc(record[0])}", esc(record[1])]
    out += [".SH EXIT STATUS"]
    for code, what in EXIT_CODES.items():
        out += [".TP", f".B {code}", esc(what)]
    out += [".SH ENVIRONMENT", ".TP", ".B PROCOS_HOME", "State folder (default ~/.local/share/procos).",
            ".TP", ".B PROCOS_ENV", "dev or prod (unset: prod).", ".TP", ".B PROCOS_TOKEN",
            "Your personal token: who you are.", ".TP", ".B VECTOR_ENDPOINT", "The store URI when a command omits it.",
            ".SH SEE ALSO", "The README and docs/ of procos-knowledge; procos config show."]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != text:
            print(f"stale: {PAGE} (run python tools/build_manpage.py)")
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text, encoding="utf-8")
    print("wrote", PAGE.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
