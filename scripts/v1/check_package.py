"""Read the bundle's manifest and check it against its schema and supported versions (check_package)."""

import json


def run(ctx):
    result = ctx.api.check_package(ctx.data["bundle"], identity=ctx.data.get("identity") or None)
    ctx.data["package"] = json.loads(json.dumps(result, default=str))
