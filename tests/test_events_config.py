"""The saveEvent backend's settings: a choice per tenant, every unknown a setting with a
written-down default, and doctor showing the mapping a tenant will send."""

from __future__ import annotations

import copy

import pytest

from optibridge.cli.doctor_reporting import check_reporting, describe_mapping
from optibridge.config import ConfigError, parse_config
from optibridge.events_config import DEFAULT_CONTEXT, InDoubtPolicy, Reporting
from tests.test_config import ENV, minimal


def engaged(**section: object) -> dict:  # type: ignore[type-arg]
    data = minimal()
    data["tenants"]["acme"]["reporting"] = "engagement_events"
    data["tenants"]["acme"]["engagement_events"] = {"tenant_id": 1000, "token_env": "T",
                                                    **section}
    return data


def test_interactions_stay_the_default_and_need_no_token() -> None:
    tenant = parse_config(minimal(), environ=ENV).tenant("acme")
    assert tenant.reporting == Reporting.INTERACTIONS
    data = minimal()
    data["tenants"]["acme"]["engagement_events"] = {"token_env": "UNSET_TOKEN"}
    assert parse_config(data, environ=ENV).tenant("acme").engagement_events.token is None


def test_the_defaults_are_the_written_down_assumptions() -> None:
    section = parse_config(engaged(), environ={**ENV, "T": "tok"}).tenant("acme") \
        .engagement_events
    assert section.endpoint() == "https://metric-1000.optimove.net/api/saveEvent"
    assert section.secret() == b"tok"
    assert section.in_doubt == InDoubtPolicy.HOLD and section.batch_size == 100
    assert section.context == DEFAULT_CONTEXT
    assert section.events.name_of("opened") == "opened"
    assert section.events.name_of("submitted") == "sent"


@pytest.mark.parametrize(("data", "named"), [
    (engaged(), "environment variable T is not set"),
    (engaged(tenant_id=None), "tenant_id: set it"),
    (engaged(url="metric.example/save"), "http:// or https://"),
    (engaged(url="https://m-{tenant}.example"), "the only placeholder is {tenant_id}"),
    (engaged(context={"campaign": "campaign_name"}), "campaign_id"),
    (engaged(in_doubt="retry"), "'hold' or 'resend_after'"),
    (engaged(events={"opend": "opened"}), "unknown key; did you mean 'opened'?"),
])
def test_each_mistake_is_named(data: dict, named: str) -> None:  # type: ignore[type-arg]
    environ = ENV if "is not set" in named else {**ENV, "T": "tok"}
    with pytest.raises(ConfigError) as raised:
        parse_config(copy.deepcopy(data), environ=environ)
    assert named in str(raised.value)


def test_doctor_shows_the_mapping_a_tenant_will_send() -> None:
    data = engaged(events={"delivered": ""}, context={"cid": "campaign_id",
                                                       "key": "event_key"},
                   in_doubt="resend_after", resend_after_seconds=600)
    tenant = parse_config(data, environ={**ENV, "T": "tok"}).tenant("acme")
    shown = describe_mapping(tenant)
    assert "POST https://metric-1000.optimove.net/api/saveEvent" in shown
    assert "delivered -> (not sent)" in shown and "submitted -> sent" in shown
    assert "cid <- campaign_id, key <- event_key" in shown
    assert "resend after 600 s" in shown
    check = check_reporting("acme", tenant)
    assert check.ok and check.warn and "de-duplicates" in check.fix
    plain = parse_config(minimal(), environ=ENV).tenant("acme")
    assert describe_mapping(plain).startswith("interactions: UpdateCampaignInteractions")
