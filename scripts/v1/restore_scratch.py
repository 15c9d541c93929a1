"""DR drill step 3: restore the bundle's records into the scratch target (load_vectors, replace); timed."""

import time


def run(ctx):
    data = ctx.data
    data["restore_started_at"] = time.time()  # the recovery clock (rto_seconds) starts here
    started = time.perf_counter()
    result = ctx.api.load_vectors(data["bundle"], data["target"], mode="replace")
    data["restore_seconds"] = round(time.perf_counter() - started, 3)
    data["restored"] = int(result["imported"])
