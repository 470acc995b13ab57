"""``doctor``'s row about reporting: the backend and, for saveEvent, the mapping sent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from optibridge.cli.doctor import Check

if TYPE_CHECKING:
    from optibridge.config import TenantConfig


def describe_mapping(tenant: TenantConfig) -> str:
    """What a tenant sends: event names, context fields and their sources, limits."""
    from optibridge.events_config import EventNames, Reporting

    if tenant.reporting == Reporting.INTERACTIONS:
        return ("interactions: UpdateCampaignInteractions, opened 2, clicked 3, bounced 9, "
                "dropped 5 (seed 000); in doubt: read back")
    section = tenant.engagement_events
    names = ", ".join(f"{ours} -> {section.events.name_of(ours) or '(not sent)'}"
                      for ours in EventNames.model_fields)
    context = ", ".join(f"{name} <- {source}" for name, source in section.context.items())
    policy = str(section.in_doubt) if section.in_doubt == "hold" else \
        f"resend after {section.resend_after_seconds:g} s"
    limit = section.rate_limit
    return (f"engagement_events: POST {section.endpoint()}; {section.batch_size} events a "
            f"call, {limit.requests} calls per {limit.per_seconds:g} s; in doubt: {policy}\n"
            f"events: {names}\ncontext: {context or '(none)'}")


def check_reporting(name: str, tenant: TenantConfig) -> Check:
    from optibridge.events_config import InDoubtPolicy, Reporting

    what = f"tenant {name}: reporting"
    detail = describe_mapping(tenant)
    if tenant.reporting == Reporting.ENGAGEMENT_EVENTS \
            and tenant.engagement_events.in_doubt == InDoubtPolicy.RESEND_AFTER:
        return Check(what, True, detail, "resend_after counts an in-doubt batch twice unless "
                     "Optimove confirmed saveEvent de-duplicates", warn=True)
    return Check(what, True, detail)
