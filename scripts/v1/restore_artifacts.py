"""DR drill step 4: restore the bundle's artifacts into the scratch target (register_artifacts, replace).

Its time is added to ``restore_seconds``, so the drill reports the whole restore.
"""

import time


def run(ctx):
    data = ctx.data
    started = time.perf_counter()
    result = ctx.api.register_artifacts(data["bundle"], data["target"], mode="replace")
    data["restore_seconds"] = round(data.get("restore_seconds", 0) + time.perf_counter() - started, 3)
    data["artifacts"] = int(result["artifacts"])
