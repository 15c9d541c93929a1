"""Memory stays bounded whatever the size: ``index.faiss`` is checked by its streamed hash and its header
only (never loaded), measured as the peak RSS of a subprocess on a 1.5 GB index file; and the header
parser reads exactly what FAISS writes (flat and HNSW), refusing truncated or padded files."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from engine.snapshot.faiss_file import index_problems
from engine.snapshot.faiss_header import HeaderError, read_header

ROWS, DIMS = 500_000, 768  # 1.5 GB of float32 codes


def sparse_flat_index(path: Path, rows: int, dims: int) -> int:
    """A well-formed IndexFlatIP file of ``rows`` x ``dims`` zeros, written sparse (no disk, no RAM)."""
    header = b"IxFI" + struct.pack("<iqqq?iQ", dims, rows, 1 << 20, 1 << 20, True, 0, rows * dims)
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + 4 * rows * dims)
    return path.stat().st_size


CHILD = """
import json, sys
from pathlib import Path
from engine.snapshot.checksums import sha256_file
from engine.snapshot.faiss_file import index_problems
path = Path(sys.argv[1])
problems = index_problems(path, int(sys.argv[2]), int(sys.argv[3]), "cosine")
digest, size = sha256_file(path)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) * 1024
print(json.dumps({"problems": problems, "size": size, "peak": peak}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read the peak RSS")
def test_checking_a_large_index_faiss_keeps_memory_flat(tmp_path):
    path = tmp_path / "index.faiss"
    size = sparse_flat_index(path, ROWS, DIMS)
    assert size > 1_500_000_000
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(ROWS), str(DIMS)], capture_output=True,
                         text=True, timeout=300, env={**os.environ})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["problems"] == [] and result["size"] == size
    assert result["peak"] < 300_000_000, f"peak RSS {result['peak'] / 1e6:.0f} MB for a {size / 1e9:.1f} GB index"


@pytest.mark.parametrize("kind", ["flat-ip", "flat-l2", "hnsw-ip", "hnsw-l2"])
def test_the_header_parser_reads_what_faiss_writes(kind, tmp_path):
    x = np.random.default_rng(1).standard_normal((700, 12)).astype(np.float32)
    metric = faiss.METRIC_L2 if kind.endswith("l2") else faiss.METRIC_INNER_PRODUCT
    if kind.startswith("flat"):
        index = faiss.IndexFlat(12, metric)
    else:
        index = faiss.IndexHNSWFlat(12, 12, metric)
        index.hnsw.efConstruction = 50
    index.add(x)
    path = tmp_path / "index.faiss"
    faiss.write_index(index, str(path))
    header = read_header(path)
    assert (header.dimensions, header.ntotal) == (12, 700)
    assert header.metric == ("l2" if kind.endswith("l2") else "inner_product")
    if kind.startswith("hnsw"):
        assert (header.kind, header.m, header.ef_construction) == ("hnsw", 12, 50)
    typed = "hnsw" if kind.startswith("hnsw") else None  # the manifest's faiss_index_type (absent: flat)
    assert index_problems(path, 700, 12, "l2" if kind.endswith("l2") else "cosine", typed) == []
    assert index_problems(path, 701, 12, None, typed) and index_problems(path, 700, 13, None, typed)
    assert index_problems(path, 700, 12, None, "flat" if typed else "hnsw")  # the kind must match too


def test_a_truncated_or_padded_index_is_a_finding(tmp_path):
    index = faiss.IndexFlatIP(4)
    index.add(np.ones((10, 4), np.float32))
    path = tmp_path / "index.faiss"
    faiss.write_index(index, str(path))
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    with pytest.raises(HeaderError):
        read_header(path)
    assert index_problems(path, 10, 4)[0].startswith("is not a FAISS index")
    path.write_bytes(data + b"\0")
    assert "follow the end" in index_problems(path, 10, 4)[0]
    path.write_bytes(b"IxXX" + data[4:])
    assert "unknown index type" in index_problems(path, 10, 4)[0]
    path.write_bytes(data)
    assert "ranks by inner_product" in index_problems(path, 10, 4, "l2")[0]
