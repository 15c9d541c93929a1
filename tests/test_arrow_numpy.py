"""Arrow columns read into NumPy without pandas: ``Array.to_numpy`` imports pandas on first use (about
40 MB of memory and most of a second per process), so the read paths of verify, import, validate and
drift read the data buffers themselves (``engine.snapshot.parquet_io.numpy_of``)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from engine.snapshot.parquet_io import numpy_of, vectors_of


@pytest.mark.parametrize("values", [np.arange(10, dtype=np.int64), np.linspace(-1, 1, 10, dtype=np.float32),
                                    np.linspace(-1, 1, 10, dtype=np.float64), np.arange(10, dtype=np.int32)])
def test_a_sliced_primitive_array_reads_as_its_values(values):
    array = pa.array(values)
    for start, length in ((0, 10), (3, 5), (9, 1), (4, 0)):
        got = numpy_of(array.slice(start, length))
        assert got.dtype == values.dtype and np.array_equal(got, values[start:start + length])


def test_timestamps_viewed_as_int64_and_chunked_arrays():
    stamps = pa.array([0, 1_700_000_000_000_000, -5], pa.int64()).view(pa.timestamp("us", tz="UTC"))
    assert numpy_of(stamps.view(pa.int64())).tolist() == [0, 1_700_000_000_000_000, -5]
    chunked = pa.chunked_array([pa.array([1, 2], pa.int64()), pa.array([3], pa.int64())])
    assert numpy_of(chunked).tolist() == [1, 2, 3]


def test_nulls_fall_back_to_arrow_and_become_nan_for_the_row_checks():
    got = numpy_of(pa.array([1.0, None, 3.0], pa.float32()))
    assert np.isnan(got[1]) and got[0] == 1.0 and got[2] == 3.0


def test_a_sliced_vector_column_reads_its_own_rows():
    flat = np.arange(24, dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(flat), 4).slice(2, 3)
    assert np.array_equal(vectors_of(column, 4), flat.reshape(6, 4)[2:5])


def test_verifying_and_reading_a_bundle_do_not_import_pandas(tmp_path):
    from engine.repository.base import StoreSettings
    from engine.snapshot.writer import finish_bundle, start_bundle, write_artifacts, write_embeddings
    from engine.synthetic import synthetic_batches

    staging = start_bundle(tmp_path)
    write_embeddings(staging, synthetic_batches(500, 8, batch_size=128), settings=StoreSettings(8, "cosine", "flat", {}),
                     backend="pgvector", uri="synthetic")
    write_artifacts(staging, [])
    bundle = finish_bundle(staging, catalog=False).path
    child = ("import sys\nfrom engine.snapshot.verify import verify_bundle\nfrom engine.snapshot.reader import "
             "iter_batches, manifest_of\nfrom pathlib import Path\n"
             f"root = Path({str(bundle)!r})\nassert verify_bundle(root).ok\n"
             "rows = sum(len(b) for b in iter_batches(root, manifest_of(root), 100))\n"
             "print(rows, 'pandas' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["500", "False"]
