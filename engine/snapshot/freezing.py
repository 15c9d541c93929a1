"""The freeze an export holds: a leased freeze kept alive by a thread while the export works.

``export_snapshot(..., freeze=True)`` holds the store's freeze flag as a leased freeze
(:mod:`engine.repository.freeze`): its holder is this process, its 60 s lease is renewed every
15 s, and it is cleared on every exit path. A SIGKILL leaves it set but *stale* (its holder is
gone), so the next writer or export clears it. An export without ``freeze`` only clears a stale
freeze it finds. Either way, what was cleared is reported in the export's warnings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from engine.owner import describe
from engine.repository import freeze

if TYPE_CHECKING:
    from engine.repository import VectorRepository


@contextmanager
def held_freeze(repo: VectorRepository, wanted: bool, *, lease_seconds: float = freeze.DEFAULT_LEASE
                ) -> Iterator[list[str]]:
    """Hold ``repo``'s freeze for the block when ``wanted``; yield the list of audit notes (warnings).

    A freeze already held by a live other holder, or an operator's pause, is left as it is (and
    stays set after the block).
    """
    notes: list[str] = []
    if not wanted:
        if repo.freeze_state().stale:  # read first: an export of a read-only store must not need to write
            before = repo.resume_ingestion(stale_only=True)
            if before.stale:
                notes.append(freeze.note_cleared(repo.uri, before, "this export"))
        yield notes
        return
    me = freeze.holder(kind="export")
    before = repo.pause_ingestion(me, lease_seconds)
    if before.stale:
        notes.append(freeze.note_cleared(repo.uri, before, "this export froze it"))
    owned = freeze.may_pause(before, me)
    keeper = None
    if owned:
        keeper = freeze.LeaseKeeper(lambda: repo.renew_pause(me, lease_seconds),
                                    lease_seconds * freeze.RENEW_FRACTION, name="procos-export-lease").start()
    else:
        notes.append(f"{repo.uri} was already frozen by {describe(before.held_by) if before.held_by else 'an operator'}"
                     "; this export left that freeze as it was")
    try:
        yield notes
    finally:
        if keeper is not None:
            keeper.stop()
            if keeper.lost.is_set():
                notes.append(f"the freeze of {repo.uri} was cleared by someone else during the export; the "
                             "bundle is still one consistent view, but writes may have been accepted meanwhile")
        if owned:
            repo.resume_ingestion(me)
