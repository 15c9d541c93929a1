"""Remove the pulled copy of an S3 bundle once it is imported."""


def run(ctx):
    folder = ctx.data.get("fetched_folder")
    if folder:
        ctx.api.remove_fetched(folder)
        ctx.log(f"removed the fetched copy {folder}")
    ctx.cancel_done("remove_fetched")
