"""``optibridge doctor``'s read-back check: can in-doubt report batches be resolved?"""

from __future__ import annotations

import datetime as dt

import httpx

from optibridge.cli.doctor import Check, _short, current_store, optimove_client
from optibridge.config import Config, TenantConfig
from optibridge.optimove.errors import (
    OptimoveAuthError,
    OptimoveError,
    OptimoveUnexpectedResponse,
)

PROBE_CUSTOMER = "optibridge-doctor"  # any ID: an unknown customer answers an empty list


async def check_readback(config: Config, name: str, tenant: TenantConfig) -> Check:
    """The key may call GetCustomerChannelInteractions, and serving found it usable."""
    what = f"tenant {name}: read-back"
    today = dt.datetime.now(dt.UTC).date()
    try:
        async with optimove_client(config, tenant) as client:
            await client.get_customer_channel_interactions(PROBE_CUSTOMER, today, today)
    except OptimoveAuthError as error:
        return Check(what, False, f"GetCustomerChannelInteractions refused ({error.status}): "
                     "in-doubt report batches cannot be read back and are held",
                     "ask Optimove to add the customers functions to this key's role")
    except OptimoveUnexpectedResponse as error:
        return Check(what, False, f"GetCustomerChannelInteractions answered in a shape we "
                     f"do not know: {_short(error)}", "report it to the optibridge team")
    except (OptimoveError, httpx.HTTPError) as error:
        return Check(what, False, _short(error), f"check tenants.{name}.optimove_url")
    unusable = await _stored_unusable(config, name)
    if unusable:
        return Check(what, False, f"permitted, but serving found read-back unusable: "
                     f"{unusable}", "see the status page; raise timing.in_doubt_ceiling if "
                     "Optimove's read-back is that slow, or resolve the batches by hand")
    return Check(what, True, "GetCustomerChannelInteractions permitted")


async def _stored_unusable(config: Config, name: str) -> str | None:
    """Why serving last found read-back unusable for the tenant (None: it did not)."""
    store = await current_store(config)
    if store is None:  # no database or not migrated yet: the database check says so
        return None
    try:
        return (await store.readback_lag(name)).unusable
    finally:
        await store.db.dispose()
