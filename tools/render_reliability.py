"""Render the figures of the last reliability campaign into docs/reliability.md.

``make chaos`` runs ``tests/chaos`` with ``CHAOS_FULL=1`` and ``CHAOS_REPORT=docs/reliability.json``,
then ``python tools/render_reliability.py docs/reliability.json docs/reliability.md``: the text between
the ``<!-- chaos-figures:start -->`` and ``<!-- chaos-figures:end -->`` markers is replaced by a table
made from the JSON (trials per operation, how many kills landed mid-run, violations). ``--check``
exits 1 when the document does not show the JSON's figures.

``--rerun FILE`` records a partial campaign (some operations re-run with ``CHAOS_FULL=1`` after a
fix, written by ``CHAOS_REPORT=FILE``) under ``"reruns"`` in the JSON, and renders it below the
full campaign's table; the next full ``make chaos`` writes a fresh JSON without reruns.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

START, END = "<!-- chaos-figures:start -->", "<!-- chaos-figures:end -->"

GROUPS = [
    ("SIGKILL at a random moment", ("export-", "import-", "pack", "unpack", "workflow-")),
    ("Corruption", ("corruption",)),
    ("Parsing arbitrary input (hypothesis examples)", ("parse-",)),
    ("Full disk", ("disk-",)),
    ("Concurrency", ("concurrent-", "two-")),
]
KILL_OPS = ("export-", "import-", "pack", "unpack", "workflow-")


def _group(name: str) -> str:
    for title, prefixes in GROUPS:
        if name.startswith(prefixes):
            return title
    return "Other"


def _notes(notes: dict[str, int], limit: int = 6) -> str:
    shown = sorted(notes.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    more = len(notes) - len(shown)
    text = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in shown)
    return text + (f", and {more} more kinds" if more > 0 else "")


def render(data: dict) -> str:
    ops = data["operations"]
    total = sum(o["trials"] for o in ops.values())
    broken = sum(o["violations"] for o in ops.values())
    lines = [
        f"Last campaign: {data.get('started_utc', '?')}, seed {data['seed']}, commit {data.get('commit', '?')}, "
        f"{data.get('minutes', '?')} minutes on {data.get('machine', '?')}"
        f"{'' if data.get('full') else ' (a SAMPLE run, not the full campaign)'}; "
        f"full disk simulated with {data.get('full_disk_method', 'n/a')}.",
        "",
        f"**{total} trials, {broken} with a violated invariant** (target: 0).",
        "",
        "| group | operation | trials | killed mid-run | ended before the kill | violations | what the trials hit |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for title, _ in [*GROUPS, ("Other", ())]:
        for name, o in sorted(ops.items()):
            if _group(name) != title:
                continue
            killed = str(o["killed"]) if name.startswith(KILL_OPS) else ""
            finished = str(o["finished"]) if name.startswith(KILL_OPS) else ""
            lines.append(f"| {title} | `{name}` | {o['trials']} | {killed} | {finished} | {o['violations']} | "
                         f"{_notes(o.get('notes', {}))} |")
    lines += _failures(ops, "Violations (each names the seed and trial that reproduces it):")
    for rerun in data.get("reruns", []):
        lines += _rerun(rerun, set(ops))
    return "\n".join(lines)


def _failures(ops: dict, title: str) -> list[str]:
    failures = [f"- `{name}`: {' '.join(f.split())[:500]}" for name, o in sorted(ops.items())
                for f in o.get("failures", [])]
    return ["", title, "", *failures] if failures else []


def _rerun(data: dict, listed: set[str]) -> list[str]:
    ops = data["operations"]
    new = sorted(set(ops) - listed)
    added = f" (added: {', '.join(f'`{n}`' for n in new)}, which the full campaign did not have yet)" if new else ""
    lines = [
        "",
        f"Rerun of {len(ops)} operations with all their trials: {data.get('started_utc', '?')}, seed "
        f"{data['seed']}, commit {data.get('commit', '?')}, {data.get('minutes', '?')} minutes; these "
        f"figures supersede the table's for these operations{added}.",
        "",
        "| operation | trials | killed mid-run | ended before the kill | violations | what the trials hit |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, o in sorted(ops.items()):
        killed, finished = (str(o["killed"]), str(o["finished"])) if name.startswith(KILL_OPS) else ("", "")
        lines.append(f"| `{name}` | {o['trials']} | {killed} | {finished} | {o['violations']} | "
                     f"{_notes(o.get('notes', {}))} |")
    return lines + _failures(ops, "Violations of the rerun:")


def add_rerun(source: Path, rerun: Path) -> None:
    data = json.loads(source.read_text(encoding="utf-8"))
    new = json.loads(rerun.read_text(encoding="utf-8"))
    if not new.get("full"):
        raise SystemExit(f"{rerun} is not from a run with CHAOS_FULL=1")
    new.pop("reruns", None)
    data["reruns"] = [r for r in data.get("reruns", []) if set(r["operations"]) - set(new["operations"])]
    data["reruns"].append(new)
    source.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    rerun = None
    if "--rerun" in args:
        at = args.index("--rerun")
        rerun = Path(args[at + 1])
        del args[at:at + 2]
    source, target = (Path(a) for a in (args or ["docs/reliability.json", "docs/reliability.md"]))
    if rerun is not None:
        add_rerun(source, rerun)
    data = json.loads(source.read_text(encoding="utf-8"))
    text = target.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{target} has no {START} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{render(data)}\n{END}{tail}"
    if check:
        return 0 if new == text else 1
    target.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
