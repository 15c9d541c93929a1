"""Check a request's variables before anything is approved or frozen; fill in defaults.

Used first by export_snapshot and import_snapshot. Fails the task naming each missing or bad variable.
Defaults: for imports mode "append" and on_conflict "version". Records what an export approver decides
on: the source's record count and dimensions.
"""

from engine.errors import InvalidInput

REQUIRED = {
    "export_snapshot": ("source", "out_dir"),
    "import_snapshot": ("bundle", "target"),
}
ENVIRONMENTS = ("dev", "prod")
MODES = ("append", "replace")


def run(ctx):
    data = ctx.data
    missing = [name for name in REQUIRED.get(ctx.process, ()) if not data.get(name)]
    if missing:
        raise InvalidInput(f"process {ctx.process} needs the variable(s) {', '.join(missing)}",
                           hint=f"procos process start {ctx.process} "
                                + " ".join(f"--var {name}=..." for name in missing))
    data.setdefault("environment", "prod")  # the service always sets the deployment's; fail closed
    if data["environment"] not in ENVIRONMENTS:
        raise InvalidInput(f"environment must be dev or prod, got {data['environment']!r}",
                           hint="--var environment=prod (manual approval) or --var environment=dev")
    if ctx.process == "export_snapshot":
        stats = ctx.api.store_stats(data["source"])
        data["record_count"] = int(stats["count"])
        data["dimensions"] = stats.get("dimensions")
    if ctx.process == "import_snapshot":
        data["bundle_remote"] = str(data["bundle"]).startswith("s3://")
        data.setdefault("mode", "append")
        data.setdefault("on_conflict", "version")
        if data["mode"] not in MODES:
            raise InvalidInput(f"mode must be append or replace, got {data['mode']!r}")
