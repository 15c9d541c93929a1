"""Cutover monitoring (playbook step 7): compare sample queries on source and target for monitor_seconds."""

import time


def run(ctx):
    data = ctx.data
    period = float(data.get("monitor_seconds", 900))
    pause = min(60.0, max(1.0, period / 10))
    deadline = time.monotonic() + period
    checks, anomalies, overlaps = 0, [], []
    while True:
        result = ctx.api.compare_answers(data["source"], data["target"], queries=int(data.get("queries", 20)),
                                         k=int(data.get("k", 10)), seed=checks)
        checks += 1
        overlaps.append(result["mean_overlap"])
        anomalies += [{**a, "check": checks} for a in result["anomalies"]]
        if time.monotonic() + pause > deadline:
            break
        time.sleep(pause)
    data["monitor"] = {"seconds": period, "checks": checks, "mean_overlaps": overlaps, "anomalies": anomalies[:50],
                       "anomaly_count": len(anomalies)}
    if anomalies:
        ctx.log(f"monitoring found {len(anomalies)} anomalies in {checks} checks")
