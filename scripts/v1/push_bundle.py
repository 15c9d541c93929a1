"""Push the published bundle to the ``destination`` S3 location (push_snapshot), manifest last, resumable.

A push that fails leaves the instance in error with what is missing; ``procos instance retry ID``
continues it and does not send again the parts already there and checked.
"""


def run(ctx):
    data = ctx.data
    result = ctx.api.push_snapshot(data["bundle"], data["destination"])
    data["remote"] = result["destination"]  # s3://BUCKET/PREFIX/<bundle name>
    data["push"] = {k: result.get(k) for k in ("files", "bytes", "bytes_sent", "bytes_skipped", "seconds")}
