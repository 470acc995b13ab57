"""Each trigger of a group-committed write gets its own ID back: the HTTP answer for a
trigger names the row stored for it."""

from __future__ import annotations

from sqlalchemy import select

from optibridge.domain import NewTrigger
from optibridge.store import open_store
from optibridge.store.schema import Trigger


def new_trigger(customer: str) -> NewTrigger:
    return NewTrigger(tenant="t", campaign_id=1, channel_id=2, template_id=3,
                      customer_id=customer, action_id=4, trigger_name="cart",
                      address=f"{customer.lower()}@example.com", fields={"N": customer},
                      payload="{}", fingerprint=customer)


async def test_ids_come_back_in_the_order_of_the_triggers(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        customers = [f"C{i:03d}" for i in range(300)]
        ids = await store.record_triggers([new_trigger(c) for c in customers])
        async with store.db.read() as session:
            rows = await session.execute(select(Trigger.id, Trigger.customer_id))
            stored = {trigger_id: customer for trigger_id, customer in rows}
        assert [stored[i] for i in ids] == customers
    finally:
        await store.db.dispose()
