"""The store: every durable fact of the pipeline, behind typed methods (no SQL outside)."""

from __future__ import annotations

from optibridge.store.callbacks import CallbackStore
from optibridge.store.calls import CallStore
from optibridge.store.campaigns import CampaignStore
from optibridge.store.db import Database
from optibridge.store.engagements import EngagementStore
from optibridge.store.event_reports import EventReportStore
from optibridge.store.in_doubt import InDoubtStore
from optibridge.store.leftovers import LeftoverStore
from optibridge.store.migrate import upgrade
from optibridge.store.ops import OpsStore
from optibridge.store.problems import ProblemStore
from optibridge.store.pruning import PruningStore
from optibridge.store.readback import ReadbackStore
from optibridge.store.reports import ReportStore
from optibridge.store.status import StatusStore
from optibridge.store.triggers import TriggerStore
from optibridge.store.work import WorkStore


class Store(CampaignStore, CallbackStore, ReportStore, CallStore, OpsStore, TriggerStore,
            ReadbackStore, StatusStore, ProblemStore, EngagementStore, InDoubtStore,
            WorkStore, PruningStore, LeftoverStore, EventReportStore):
    """The pipeline's one handle on the database."""


async def open_store(url: str) -> Store:
    """Migrate the database at ``url`` to the newest schema and return a store on it."""
    import asyncio

    await asyncio.to_thread(upgrade, url)
    return Store(Database(url))


__all__ = ["Database", "Store", "open_store"]
