"""Schema_version 2 embeddings: rows split into ``embeddings/part-NNNNN.parquet`` shards.

Every shard but the last holds exactly ``shard_rows`` rows; rows are in strictly ascending id order
within and across shards (shard ``i``'s last id is before shard ``i+1``'s first id). Each shard is
an ordinary ``embeddings.parquet`` file of :mod:`.parquet_io` (same schema, row groups, settings),
so a shard's bytes depend only on its rows. An empty store gives one empty ``part-00000``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.errors import BundleError

from . import layout
from .parquet_io import EmbeddingsWriter

DEFAULT_SHARD_ROWS = 100_000


def check_shard_rows(shard_rows: int) -> int:
    if isinstance(shard_rows, bool) or not isinstance(shard_rows, int) or shard_rows < 1:
        raise BundleError(f"shard_rows must be a positive integer, got {shard_rows!r}",
                          hint="use e.g. --shard-rows 100000")
    return shard_rows


class ShardedWriter:
    """Streams Arrow batches (ascending id) into consecutive shards under ``root``.

    Each shard is hashed while it is written (no second read); :meth:`finish` returns one entry per
    shard: ``{"file", "rows", "first_id", "last_id", "sha256", "size"}``.
    """

    def __init__(self, root: Path, dimensions: int, compression_level: int = 1,
                 shard_rows: int = DEFAULT_SHARD_ROWS, vector_encoding: str = "plain") -> None:
        self.root = root
        self.vector_encoding = vector_encoding
        self.dimensions = dimensions
        self.compression_level = compression_level
        self.shard_rows = check_shard_rows(shard_rows)
        self.shards: list[dict[str, Any]] = []
        self.rows = 0
        self._current: EmbeddingsWriter | None = None
        self._entry: dict[str, Any] | None = None
        (root / layout.SHARD_DIR).mkdir(exist_ok=True)

    def _open(self) -> None:
        rel = layout.shard_name(len(self.shards))
        path = layout.member(self.root, rel)
        path.unlink(missing_ok=True)
        self._current = EmbeddingsWriter(path, self.dimensions, self.compression_level, self.vector_encoding)
        self._entry = {"file": rel, "rows": 0, "first_id": None, "last_id": None}

    def _close(self) -> None:
        assert self._current is not None and self._entry is not None
        sha, size = self._current.finish()
        self.shards.append({**self._entry, "sha256": sha, "size": size})
        self._current = self._entry = None

    def write_arrow(self, batch: pa.RecordBatch) -> None:
        """Append rows converted with :func:`~.parquet_io.to_arrow`, starting a new shard when one is full."""
        offset = 0
        while offset < batch.num_rows:
            if self._current is None:
                self._open()
            assert self._current is not None and self._entry is not None
            take = min(self.shard_rows - self._entry["rows"], batch.num_rows - offset)
            piece = batch.slice(offset, take)
            ids = piece.column(0)
            if self._entry["first_id"] is None:
                self._entry["first_id"] = ids[0].as_py()
            self._entry["last_id"] = ids[take - 1].as_py()
            self._current.write_arrow(piece)
            self._entry["rows"] += take
            self.rows += take
            offset += take
            if self._entry["rows"] == self.shard_rows:
                self._close()

    def finish(self) -> list[dict[str, Any]]:
        """Close the last shard (writing one empty shard when there were no rows at all)."""
        if self._current is None and not self.shards:
            self._open()
        if self._current is not None:
            self._close()
        return self.shards

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()
            self._current = None
