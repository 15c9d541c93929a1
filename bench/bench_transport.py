"""Push and pull throughput of a bundle through S3 next to plain boto3 transfers, on one moto server.

    python bench/bench_transport.py [--size-mb 1024] [--part-size 16] [--concurrency 8] [--repeat 3]
                                    [--out results.json]

A real bundle of about ``--size-mb`` MB (768-dimension synthetic records in 100,000-row shards,
no FAISS index) is written into a temporary folder and a ``moto_server`` is started on 127.0.0.1.
Then, each phase in a fresh child process (peak RSS = that process's VmHWM), in the same run:

- ``upload_file``: boto3's ``upload_file`` of every file of the bundle (default TransferConfig:
  8 MiB parts, 10 threads), the baseline for pushing;
- ``push``: ``engine.transport.push_bundle`` (SHA-256 per part, file checked against
  checksums.sha256 and S3's checksum, manifest last) with the given part size and concurrency;
- ``download_file``: boto3's ``download_file`` of every object of the baseline copy;
- ``pull``: ``engine.transport.pull_bundle`` without the final ``verify_bundle`` (ranged GETs, S3
  checksums checked): the transfer itself, compared with ``download_file``;
- ``verify``: ``verify_bundle`` of the pulled bundle, which ``procos snapshot pull`` adds to the pull.

The four transfer phases run ``--repeat`` rounds, interleaved (baseline, procos, baseline, ...),
and each phase's best round counts: on a shared machine the slowest rounds measure the neighbours.
Goals: push and pull throughput >= 0.9 x the boto3 baseline; push peak RSS <= 256 MB with the
default part size and concurrency. The server and every file live in one temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_RATIO = 0.9
GOAL_RSS_MB = 256
DIM = 768
BUCKET = "bench"


def peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint)


# --- phases (each runs in its own child process) -------------------------------------------------

def phase_upload_file(endpoint: str, bundle: str) -> dict:
    c = client(endpoint)
    root = Path(bundle)
    t0 = time.perf_counter()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        c.upload_file(str(path), BUCKET, f"base/{root.name}/{path.relative_to(root).as_posix()}")
    return {"seconds": time.perf_counter() - t0}


def phase_push(endpoint: str, bundle: str, part_size: int, concurrency: int, prefix: str) -> dict:
    from engine.transport import PushOptions, push_bundle

    t0 = time.perf_counter()
    result = push_bundle(bundle, f"s3://{BUCKET}/{prefix}", PushOptions(part_size=part_size << 20,
                         concurrency=concurrency), endpoint_url=endpoint)
    return {"seconds": time.perf_counter() - t0, "bytes_sent": result["bytes_sent"]}


def phase_download_file(endpoint: str, name: str, out: str) -> dict:
    c = client(endpoint)
    keys = [o["Key"] for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"base/{name}/")
            for o in page.get("Contents", [])]
    t0 = time.perf_counter()
    for key in keys:
        target = Path(out) / key
        target.parent.mkdir(parents=True, exist_ok=True)
        c.download_file(BUCKET, key, str(target))
    return {"seconds": time.perf_counter() - t0}


def phase_pull(endpoint: str, name: str, out: str, concurrency: int, prefix: str) -> dict:
    from engine.transport import pull_bundle

    t0 = time.perf_counter()
    result = pull_bundle(f"s3://{BUCKET}/{prefix}/{name}", out, concurrency=concurrency, endpoint_url=endpoint,
                         verify=False)
    return {"seconds": time.perf_counter() - t0, "path": result["path"]}


def phase_verify(path: str) -> dict:
    from engine.snapshot import verify_bundle

    t0 = time.perf_counter()
    report = verify_bundle(path)
    return {"seconds": time.perf_counter() - t0, "ok": report.ok}


PHASES = {f.__name__: f for f in (phase_upload_file, phase_push, phase_download_file, phase_pull, phase_verify)}


def measured(name: str, args: tuple) -> dict:
    out = PHASES[name](*args)
    return {**out, "rss_peak_mb": peak_rss_mb()}


def run_phase(name: str, *args) -> dict:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(measured, name, args).result()


def empty_prefix(endpoint: str, prefix: str) -> None:
    c = client(endpoint)
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            c.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})


# --- setup -----------------------------------------------------------------------------------------

def make_bundle(out_dir: Path, size_mb: int) -> Path:
    from engine.repository import StoreSettings
    from engine.repository.artifacts import DirectoryArtifactStore
    from engine.snapshot.staging import start_bundle
    from engine.snapshot.writer import finish_bundle, write_artifacts, write_embeddings
    from engine.synthetic import synthetic_artifacts, synthetic_batches

    rows = max(1000, (size_mb << 20) // 2900)  # about 2,900 bytes a row of 768 floats in the shards
    artifacts = DirectoryArtifactStore(out_dir / "artifacts")
    for path, data in synthetic_artifacts(0).items():
        artifacts.write(path, data)
    staging = start_bundle(out_dir / "snapshots")
    write_embeddings(staging, synthetic_batches(rows, DIM, seed=1, batch_size=8192),
                     settings=StoreSettings(dimensions=DIM, metric="cosine", index="flat"), backend="pgvector",
                     uri="pgvector:bench", compression_level=1)
    write_artifacts(staging, [artifacts])
    return Path(finish_bundle(staging, source_env="bench").path)


def start_moto(folder: Path) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if exe is None:
        raise SystemExit("moto_server is not installed: pip install 'moto[server]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(folder / "moto.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--part-size", type=int, default=16, help="MiB")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the transfer phases; the best counts")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    folder = Path(tempfile.mkdtemp(prefix="procos-bench-transport-"))
    server = None
    try:
        t0 = time.perf_counter()
        bundle = make_bundle(folder, args.size_mb)
        size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
        files = sum(1 for p in bundle.rglob("*") if p.is_file())
        print(f"bundle: {size / 1e6:.0f} MB in {files} files, written in {time.perf_counter() - t0:.1f} s")
        server, endpoint = start_moto(folder)
        client(endpoint).create_bucket(Bucket=BUCKET)
        rounds: dict[str, list[dict]] = {"upload_file": [], "push": [], "download_file": [], "pull": []}
        for n in range(args.repeat):
            prefix = f"procos{n}"  # a fresh prefix each round, so every push sends everything
            shutil.rmtree(folder / "base-dl", ignore_errors=True)
            shutil.rmtree(folder / "pulled", ignore_errors=True)
            rounds["upload_file"].append(run_phase("phase_upload_file", endpoint, str(bundle)))
            rounds["push"].append(run_phase("phase_push", endpoint, str(bundle), args.part_size, args.concurrency,
                                            prefix))
            rounds["download_file"].append(run_phase("phase_download_file", endpoint, bundle.name,
                                                     str(folder / "base-dl")))
            rounds["pull"].append(run_phase("phase_pull", endpoint, bundle.name, str(folder / "pulled"),
                                            args.concurrency, prefix))
            if n + 1 < args.repeat:
                empty_prefix(endpoint, prefix)  # moto keeps everything in memory
        results = {name: min(rs, key=lambda r: r["seconds"]) | {"rounds": [round(r["seconds"], 2) for r in rs]}
                   for name, rs in rounds.items()}
        results["verify"] = run_phase("phase_verify", rounds["pull"][-1]["path"])
        report(results, size, args)
        if args.out:
            args.out.write_text(json.dumps({"size_bytes": size, "files": files, "part_size_mib": args.part_size,
                                            "concurrency": args.concurrency, "phases": results}, indent=2))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def report(results: dict, size: int, args: argparse.Namespace) -> None:
    print(f"{'phase':<15}{'seconds':>9}{'MB/s':>9}{'peak RSS MB':>13}  rounds (s)")
    for name, r in results.items():
        print(f"{name:<15}{r['seconds']:>9.2f}{size / 1e6 / r['seconds']:>9.1f}{r['rss_peak_mb']:>13.0f}  "
              f"{r.get('rounds', '')}")
    push = results["upload_file"]["seconds"] / results["push"]["seconds"]
    pull = results["download_file"]["seconds"] / results["pull"]["seconds"]
    defaults = args.part_size == 16 and args.concurrency == 8
    print(f"push / upload_file throughput:   {push:.2f}x (goal {GOAL_RATIO}x: {'PASS' if push >= GOAL_RATIO else 'MISS'})")
    print(f"pull / download_file throughput: {pull:.2f}x (goal {GOAL_RATIO}x: {'PASS' if pull >= GOAL_RATIO else 'MISS'})")
    rss = results["push"]["rss_peak_mb"]
    print(f"push peak RSS: {rss:.0f} MB (goal {GOAL_RSS_MB} MB" + (" with the defaults" if defaults else
          ", measured with non-default settings") + f": {'PASS' if rss <= GOAL_RSS_MB else 'MISS'})")
    print(f"verify_bundle after the pull: {results['verify']['seconds']:.1f} s, ok={results['verify']['ok']}")


if __name__ == "__main__":
    main()
