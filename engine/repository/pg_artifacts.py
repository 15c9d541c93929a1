"""Knowledge artifacts of a pgvector store, kept in the same database as its vectors.

One table ``knowledge_artifacts(store, path, content, sha256, updated_ts)`` serves every store of
the database; ``store`` is the store's records table name. Each method is one transaction.
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg import Connection, sql

from engine.errors import StoreError

from .artifacts import check_artifact_path, sha256_hex
from .base import ArtifactInfo
from .pg_schema import ARTIFACT_TABLE

_T = sql.Identifier(ARTIFACT_TABLE)


class PgArtifactStore:
    """The :class:`~engine.repository.base.ArtifactStore` of one pgvector store."""

    def __init__(self, connection: Callable[[], Connection], store: str) -> None:
        self._connection = connection  # the repository's connection (raises once it is closed)
        self.store = store

    def list(self) -> list[ArtifactInfo]:
        conn = self._connection()
        with conn.transaction():
            rows = conn.execute(sql.SQL("SELECT path, sha256, octet_length(content) FROM {} WHERE store = %s"
                                        " ORDER BY path").format(_T), (self.store,)).fetchall()
        return [ArtifactInfo(path, digest, int(size)) for path, digest, size in rows]

    def read(self, path: str) -> bytes:
        check_artifact_path(path)
        conn = self._connection()
        with conn.transaction():
            row = conn.execute(sql.SQL("SELECT content FROM {} WHERE store = %s AND path = %s").format(_T),
                               (self.store, path)).fetchone()
        if row is None:
            raise StoreError(f"artifact {path!r} not found in store {self.store!r}",
                             hint="list the store's artifacts with `procos artifacts list`")
        return bytes(row[0])

    def write(self, path: str, data: bytes) -> None:
        check_artifact_path(path)
        conn = self._connection()
        with conn.transaction():
            self._put(conn, path, bytes(data))

    def delete(self, path: str) -> bool:
        check_artifact_path(path)
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(sql.SQL("DELETE FROM {} WHERE store = %s AND path = %s").format(_T), (self.store, path))
            return cur.rowcount > 0

    def replace_all(self, files: dict[str, bytes]) -> None:
        for path in files:
            check_artifact_path(path)
        conn = self._connection()
        with conn.transaction():
            conn.execute(sql.SQL("DELETE FROM {} WHERE store = %s").format(_T), (self.store,))
            for path in sorted(files):
                self._put(conn, path, bytes(files[path]))

    def _put(self, conn: Connection, path: str, data: bytes) -> None:
        conn.execute(sql.SQL(
            "INSERT INTO {} (store, path, content, sha256, updated_ts) VALUES (%s, %s, %s, %s, now())"
            " ON CONFLICT (store, path) DO UPDATE SET content = EXCLUDED.content, sha256 = EXCLUDED.sha256,"
            " updated_ts = EXCLUDED.updated_ts").format(_T), (self.store, path, data, sha256_hex(data)))
