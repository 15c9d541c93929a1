"""An S3 bundle is pulled (and verified) into a folder under PROCOS_HOME before anything else looks at it.

``bundle`` then names the local copy, ``bundle_source`` the S3 URL; a cancel removes the copy, and the
process removes it once the import is done. A later step that runs elsewhere pulls it again.
"""

import os


def run(ctx):
    data = ctx.data
    folder = os.path.join(str(ctx.home), "fetched", ctx.instance_id)
    fetched = ctx.api.fetch_bundle(data["bundle"], folder)
    data["bundle_source"] = data["bundle"]
    data["bundle"] = fetched["path"]
    data["fetched_folder"] = folder
    ctx.on_cancel("remove_fetched", folder=folder)
