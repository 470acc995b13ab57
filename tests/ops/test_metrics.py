"""/metrics parses with prometheus-client's parser and agrees with the store."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from optibridge.demo import TENANT, Rehearsal
from optibridge.domain import BatchState, SendState
from optibridge.store import Store
from tests.ops.conftest import CUSTOMERS


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Samples by name, then by their sorted labels."""
    text = httpx.get(f"{url}/metrics").text
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def value(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str,
          **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


async def test_metrics_match_the_store_after_the_campaign(settled: Rehearsal,
                                                          store: Store) -> None:
    m = scrape(settled.service_url)
    assert value(m, "optibridge_notifications_received_total", tenant=TENANT) == 2
    assert value(m, "optibridge_recipients_pulled_total", tenant=TENANT) == CUSTOMERS
    batches = await store.batches(TENANT, list(BatchState), limit=10_000)
    assert batches
    for state in BatchState:
        want = sum(1 for b in batches if b.state == state)
        assert value(m, "optibridge_report_batches", tenant=TENANT, state=str(state)) == want
    assert value(m, "optibridge_report_backlog", tenant=TENANT) == 0
    assert value(m, "optibridge_report_backlog_age_seconds", tenant=TENANT) == 0
    assert value(m, "optibridge_callback_inbox_backlog") == 0
    assert value(m, "optibridge_readback_usable", tenant=TENANT) == 1

    # What this process's clients did: one UpdateCampaignInteractions per sent batch, one
    # platform campaign per send, no 429s (the sandboxes inject no faults here).
    sent = sum(1 for b in batches if b.state == BatchState.SENT)
    assert value(m, "optibridge_api_calls_total", api="optimove",
                 call="UpdateCampaignInteractions", status="200") == sent
    sends = await store.sends(TENANT, list(SendState))
    assert value(m, "optibridge_api_calls_total", api="platform", call="POST /campaign",
                 status="200") == len(sends)
    assert "optibridge_api_rate_limited_total" not in m or not m[
        "optibridge_api_rate_limited_total"]

    # Every callback the platform made was counted, timed, and stored.
    stored, events = await store.callbacks_received()
    assert value(m, "optibridge_callbacks_received_total", tenant=TENANT,
                 status="200") == stored > 0
    assert value(m, "optibridge_callback_duration_seconds_count", tenant=TENANT) == stored
    assert value(m, "optibridge_callback_events_stored_total") == events
    counts = await store.event_counts(TENANT)
    assert events >= sum(n for n, _ in counts.values()) - counts.get("dropped", (0, 0))[0]
    share = value(m, "optibridge_rate_limit_in_use_ratio", tenant=TENANT, api="optimove")
    assert 0 <= share <= 1


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_on_the_running_service(settled: Rehearsal, path: str) -> None:
    response = httpx.get(f"{settled.service_url}{path}")
    assert response.status_code == 200
