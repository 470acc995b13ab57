"""Read-back: ``interactions`` prints what the sandbox holds; ``reconcile`` compares it with
what the store reported and prints the differences."""

from __future__ import annotations

import datetime as dt
import json

from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.models import CampaignInteractions, InteractionEvent
from tests.features.conftest import run, seed_reported
from tests.worlds import EMAIL, OPTIMOVE_KEY, TENANT, World

CAMPAIGN = 3131


def test_interactions_prints_what_optimove_holds(world: World) -> None:
    customers = run(seed_reported(world, CAMPAIGN, EMAIL, 12, bounced_every=3))
    bounced = customers[0]
    held = [r for r in world.optimove.reported_interactions(TENANT) if r.customer_id == bounced]
    assert held  # the reporting flow reached the sandbox
    result = world.cli("interactions", bounced, "--from", "2026-03-01", "--to", "2026-03-31",
                       "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["Date"], r["CampaignID"], r["ChannelID"], r["TemplateID"], r["EventID"])
            for r in rows] == [(h.interaction_date.isoformat(), h.campaign_id, h.channel_id,
                                h.template_id, h.event_id) for h in held]
    table = world.cli("interactions", bounced, "--from", "2026-03-01", "--to", "2026-03-31")
    assert table.exit_code == 0, table.output
    assert str(CAMPAIGN) in table.output and "bounced" in table.output
    none = world.cli("interactions", customers[1], "--from", "2026-03-01",
                     "--to", "2026-03-31", "--json")
    assert json.loads(none.output) == []
    backwards = world.cli("interactions", bounced, "--from", "2026-03-31", "--to", "2026-03-01")
    assert backwards.exit_code != 0


def test_reconcile_matches_then_shows_a_difference(world: World) -> None:
    customers = run(seed_reported(world, CAMPAIGN, EMAIL, 40, bounced_every=2))
    reported = customers[::2]
    ok = world.cli("reconcile", str(CAMPAIGN), "--sample", "5")
    assert ok.exit_code == 0, ok.output
    assert f"{len(reported)} customers reported; read back 5" in ok.output
    doubled = reported[3]
    run(_report_again(world, doubled))
    found = world.cli("reconcile", str(CAMPAIGN), "--sample", "100")
    assert found.exit_code == 1
    assert doubled in found.output and "1 differences" in found.output
    assert sum(1 for c in reported if c in found.output) == 1
    missing = world.cli("reconcile", "999999")
    assert missing.exit_code == 1 and "reported nothing" in missing.output


async def _report_again(world: World, customer: str) -> None:
    """What a blind retry would do: the same interaction reported a second time."""
    row = next(r for r in world.optimove.reported_interactions(TENANT)
               if r.customer_id == customer)
    async with OptimoveClient(world.optimove_url, OPTIMOVE_KEY) as client:
        await client.update_campaign_interactions(CampaignInteractions(
            campaign_id=row.campaign_id, channel_id=row.channel_id,
            interaction_date=row.interaction_date, template_id=row.template_id,
            event_id=InteractionEvent(row.event_id), customer_ids=(customer,)))
    assert row.interaction_date == dt.date(2026, 3, 2)


def test_an_unknown_row_shape_is_shown_as_it_came_never_misread(world: World) -> None:
    from optibridge.sandbox.optimove import FaultPlan, ReadbackShape

    customers = run(seed_reported(world, CAMPAIGN, EMAIL, 6, bounced_every=3))
    world.optimove.set_faults(FaultPlan(readback_shape=ReadbackShape.ENGAGEMENT_METRICS))
    result = world.cli("interactions", customers[0], "--from", "2026-03-01", "--to",
                       "2026-03-31", "--json")
    assert result.exit_code == 1
    shown = json.loads(result.output)
    assert "does not fit" in shown["unknown_shape"]
    assert shown["raw"] and shown["raw"][0]["metric"] == "bounced"
    table = world.cli("interactions", customers[0], "--from", "2026-03-01", "--to",
                      "2026-03-31")
    assert table.exit_code == 1 and "the answer as it came" in table.output
