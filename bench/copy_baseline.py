"""Raw PostgreSQL baseline for bench_store.py: binary COPY of the same records, in and out.

The records are encoded once into a file in PostgreSQL's binary COPY format (not timed as part of
the baseline); ``phase_copy_in`` streams that file with ``COPY ... FROM STDIN (FORMAT BINARY)`` into
a table shaped like a store's, and ``phase_copy_out`` reads it back with
``COPY (SELECT * FROM t) TO STDOUT (FORMAT BINARY)`` and discards the bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds
COLUMNS = "id, embedding, metadata, version, source_hash, created_ts, updated_ts"


def encode_copy_file(path: Path, count: int, dim: int, batch_size: int) -> int:
    """Write the synthetic records as a PostgreSQL binary COPY stream; returns its size in bytes."""
    from engine.synthetic import synthetic_batches

    pk = struct.Struct(">i").pack
    with open(path, "wb") as fh:
        fh.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
        for b in synthetic_batches(count, dim, batch_size=batch_size):
            vec_head = struct.pack(">ihh", 4 + 4 * dim, dim, 0)
            vecs = b.vectors.astype(">f4")
            for i, rid in enumerate(b.ids):
                rid_b, meta, sh = rid.encode(), b"\x01" + b.metadata[i].encode(), b.source_hashes[i].encode()
                fh.write(b"".join((
                    b"\x00\x07", pk(len(rid_b)), rid_b, vec_head, vecs[i].tobytes(), pk(len(meta)), meta,
                    struct.pack(">iq", 8, int(b.versions[i])), pk(len(sh)), sh,
                    struct.pack(">iqiq", 8, int(b.created_us[i]) - PG_EPOCH_US, 8,
                                int(b.updated_us[i]) - PG_EPOCH_US))))
        fh.write(b"\xff\xff")
    return path.stat().st_size


def phase_copy_in(pg_uri: str, path: str, dim: int) -> dict:
    import psycopg

    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute(f"CREATE TABLE bench_copy (id text PRIMARY KEY, embedding vector({dim}), metadata jsonb, "
                     "version bigint, source_hash text, created_ts timestamptz, updated_ts timestamptz)")
        with conn.cursor() as cur, cur.copy(f"COPY bench_copy ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as cp, \
                open(path, "rb") as fh:
            while chunk := fh.read(256 << 10):
                cp.write(chunk)
        rows = conn.execute("SELECT count(*) FROM bench_copy").fetchone()[0]
    return {"rows": rows}


def phase_copy_out(pg_uri: str) -> dict:
    import psycopg

    nbytes = 0
    with psycopg.connect(pg_uri) as conn, conn.cursor() as cur:
        with cur.copy("COPY (SELECT * FROM bench_copy) TO STDOUT (FORMAT BINARY)") as cp:
            for data in cp:
                nbytes += len(data)
        rows = conn.execute("SELECT count(*) FROM bench_copy").fetchone()[0]
    return {"rows": rows, "bytes": nbytes}
