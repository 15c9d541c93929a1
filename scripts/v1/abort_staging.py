"""Failure path: remove the export's staging folder, if one was opened (abort_export)."""

import os


def run(ctx):
    staging = ctx.data.pop("staging", None)
    if staging and os.path.isdir(staging):
        ctx.api.abort_export(staging)
        ctx.log(f"removed staging folder {staging}")
    ctx.cancel_done("abort_export")
    ctx.data["export_failed"] = True
