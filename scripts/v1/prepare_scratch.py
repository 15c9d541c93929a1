"""DR drill step 2: the restore target: ``scratch`` when given, else a fresh embedded pgvector store."""

import os


def run(ctx):
    data = ctx.data
    scratch = data.get("scratch") or ctx.api.scratch_store_uri(os.path.join(data["out_dir"], "scratch"))
    data["scratch"] = scratch
    data["target"] = scratch
