"""Bounded growth: what is only kept for operators and for exactly-once checks (the mapped
callback inbox, problems, handled notifications, gathered triggers, the events of sent
report batches, settled platform creates) is deleted once it is older than the report
period plus a margin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, select

from optibridge.domain import BatchState, CreateState
from optibridge.store.base import StoreBase, rowcount
from optibridge.store.schema import (
    BatchEvent,
    CallbackInbox,
    CallbackProblem,
    Notification,
    PlatformCreate,
    Problem,
    ReportBatch,
    Trigger,
)

PRUNE_CHUNK = 5_000  # rows per delete: short write transactions (SQLite has one writer)


@dataclass(frozen=True)
class Pruned:
    """Rows deleted, per table."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _old(before: float) -> list[tuple[Any, ColumnElement[bool]]]:
    """Each prunable table with its condition 'done with and older than ``before``'."""
    sent = select(ReportBatch.id).where(ReportBatch.state.in_([BatchState.SENT,
                                                                BatchState.EXPIRED]))
    return [
        (CallbackInbox, (CallbackInbox.processed_at.is_not(None))
         & (CallbackInbox.received_at < before)),
        (CallbackProblem, CallbackProblem.last_at < before),
        (Problem, Problem.last_at < before),
        (Notification, Notification.handled_at.is_not(None)
         & (Notification.received_at < before)),
        (Trigger, Trigger.send_id.is_not(None) & (Trigger.received_at < before)),
        (BatchEvent, BatchEvent.batch_id.in_(sent) & (BatchEvent.at < before)),
        (PlatformCreate, PlatformCreate.state.in_(
            [CreateState.MADE, CreateState.DELETED, CreateState.ABSENT])
         & (PlatformCreate.asked_at < before)),
    ]


class PruningStore(StoreBase):
    async def prune(self, before: float, chunk: int = PRUNE_CHUNK) -> Pruned:
        """Delete what is done with and older than ``before`` (Unix seconds), a chunk per
        transaction."""
        counts: dict[str, int] = {}
        for model, condition in _old(before):
            table = model.__tablename__
            counts[table] = 0
            while True:
                ids = select(model.id).where(condition).limit(chunk).scalar_subquery()
                async with self.db.write() as session:
                    deleted = rowcount(await session.execute(
                        delete(model).where(model.id.in_(ids))))
                counts[table] += deleted
                if deleted < chunk:
                    break
        return Pruned(counts)
