"""``procos process|instance|task`` through Click's runner: JSON shapes, variables, exit codes."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from workflow_support import make_env

from engine.cli import LazyGroup
from engine.cli.instances import instance_group
from engine.cli.tasks import task_group
from engine.cli.workflow import parse_vars, process_group


@click.group(cls=LazyGroup)
@click.option("--debug", is_flag=True)
def cli(debug):
    pass


for group in (process_group, instance_group, task_group):
    cli.add_command(group)


@pytest.fixture
def env(tmp_path, monkeypatch):
    made = make_env(tmp_path, monkeypatch)
    TOKENS.clear()
    TOKENS.update(made.tokens)
    return made


TOKENS: dict = {}


def run(*args, code=0, user=None):
    """Invoke the CLI as ``user`` (their token in PROCOS_TOKEN), or as the login user."""
    result = CliRunner().invoke(cli, list(args), env={"PROCOS_TOKEN": TOKENS[user] if user else None})
    assert result.exit_code == code, result.output
    return result


def test_vars_are_json_when_they_parse_else_strings():
    assert parse_vars(("n=3", "ok=true", "name=prod", "ids=[1,2]", 'q="x"', "e=")) == \
        {"n": 3, "ok": True, "name": "prod", "ids": [1, 2], "q": "x", "e": ""}


def test_approval_round_trip_through_the_cli(env):
    listed = json.loads(run("process", "list", "--json").output)
    assert "fx_approval" in {p["name"] for p in listed}
    env.prod()
    started = json.loads(run("process", "start", "fx_approval", "--var", f"counter={env.counter}",
                             "--as", "carol", "--json", user="carol").output)
    assert set(started) == {"instance_id", "state", "outcome", "exit_code", "data"} and started["state"] == "waiting"
    assert (started["outcome"], started["exit_code"]) == ("", 0)
    iid = started["instance_id"]
    [task] = json.loads(run("task", "list", "--json", user="bob").output)
    assert {"task_id", "instance_id", "process", "name", "lane", "started_by", "waiting_since", "subject"} == set(task)
    refused = run("task", "complete", task["task_id"], "--approve", code=77, user="carol")
    assert "lacks role" in refused.output
    impersonated = run("task", "complete", task["task_id"], "--as", "bob", "--approve", code=77, user="carol")
    assert "authenticated as 'carol'" in impersonated.output
    run("task", "complete", task["task_id"], "--as", "bob", code=2, user="bob")  # no decision given
    done = json.loads(run("task", "complete", task["task_id"], "--as", "bob", "--approve",
                          "--comment", "ok", "--json", user="bob").output)
    assert done["state"] == "completed" and done["data"]["comment"] == "ok"
    [inst] = json.loads(run("instance", "list", "--json").output)
    assert inst == {"instance_id": iid, "process": "fx_approval", "state": "completed", "outcome": "succeeded",
                    "started_by": "carol", "started_at": inst["started_at"], "updated_at": inst["updated_at"]}
    shown = json.loads(run("instance", "show", iid, "--json").output)
    assert {"instance_id", "state", "data", "history"} <= set(shown)
    assert "user_action" in run("instance", "show", iid, "--history").output


def test_error_state_exits_nonzero_and_retry_cancel_work(env, tmp_path):
    flag = tmp_path / "flag"
    flag.touch()
    out = run("process", "start", "fx_failure", "--var", f"counter={env.counter}", "--var", f"fail_flag={flag}",
              "--json", code=1)
    iid = json.loads(out.output)["instance_id"]
    assert json.loads(run("instance", "show", iid, "--json").output)["state"] == "error"
    cancelled = json.loads(run("instance", "cancel", iid, "--json").output)
    assert cancelled["state"] == "cancelled"
    assert "cannot be cancelled" in run("instance", "cancel", iid, code=1).output
    assert "only error or interrupted" in run("instance", "retry", iid, code=1).output
    assert "no instance" in run("instance", "show", "nope", code=1).output
