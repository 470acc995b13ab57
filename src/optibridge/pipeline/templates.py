"""Flow 2 (both parts of seed 002): keep Optimove's channel templates equal to the
platform's templates of the channel's type.

New templates are added, removed ones deleted, renamed ones deleted and added again under
the new name (whether AddChannelTemplates overwrites an existing TemplateID is not public;
delete-then-add is right either way). Calls carry at most 100 templates (section 0).

A platform template's Optimove TemplateID comes from the stored map
(``Store.template_ids``): our platform's IDs are integers, so the map is the identity; a
vendor with string IDs gets stable integers without changing this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from optibridge.optimove.models import MAX_TEMPLATES_PER_CALL, ChannelTemplate
from optibridge.pipeline.context import TenantContext
from optibridge.platform.api import PlatformTemplate

_TAG = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")


@dataclass(frozen=True)
class TemplateDiff:
    """What one channel's sync changes; names keyed by Optimove TemplateID."""

    channel_id: int
    add: Mapping[int, str] = field(default_factory=dict)
    delete: Mapping[int, str] = field(default_factory=dict)
    rename: Mapping[int, tuple[str, str]] = field(default_factory=dict)  # id: (old, new)
    # Personalization tags a template uses that no configured attribute fills (issue 8):
    # such a customer would receive the literal tag.
    warnings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add or self.delete or self.rename)

    @property
    def changes(self) -> int:
        return len(self.add) + len(self.delete) + len(self.rename)

    def lines(self) -> list[str]:
        """The diff as text, one change a line."""
        return ([f"+ {tid} {name}" for tid, name in sorted(self.add.items())]
                + [f"- {tid} {name}" for tid, name in sorted(self.delete.items())]
                + [f"~ {tid} {old} -> {new}" for tid, (old, new) in sorted(self.rename.items())])


def diff_templates(channel_id: int, wanted: Mapping[int, str], current: Mapping[int, str]
                   ) -> TemplateDiff:
    """What turns ``current`` (Optimove's) into ``wanted`` (the platform's)."""
    return TemplateDiff(
        channel_id=channel_id,
        add={tid: name for tid, name in wanted.items() if tid not in current},
        delete={tid: name for tid, name in current.items() if tid not in wanted},
        rename={tid: (current[tid], name) for tid, name in wanted.items()
                if tid in current and current[tid] != name})


def _batches(items: Sequence[int], size: int = MAX_TEMPLATES_PER_CALL) -> list[list[int]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


async def wanted_templates(ctx: TenantContext, templates: Sequence[PlatformTemplate]
                           ) -> dict[int, str]:
    """The platform's templates of the channel's type, by Optimove TemplateID."""
    ids = await ctx.store.template_ids(ctx.name, [str(t.id) for t in templates])
    return {ids[str(t.id)]: t.name.strip() or f"template {t.id}" for t in templates}


def template_tags(body: str) -> list[str]:
    """The ``{{field}}`` personalization tags a template body uses."""
    return sorted(set(_TAG.findall(body)))


async def unfilled_tags(ctx: TenantContext, channel_id: int,
                        templates: Sequence[PlatformTemplate]) -> tuple[str, ...]:
    """One warning (template name, tag) per tag no configured attribute of the channel fills."""
    configured = set(ctx.tenant.channel(channel_id).personalization)
    warnings = []
    for template in templates:
        body = (await ctx.platform.get_template(template.id)).body or ""
        warnings += [f"template {template.name!r} uses {{{{{tag}}}}}, but channel "
                     f"{channel_id} fetches no attribute {tag!r}"
                     for tag in template_tags(body) if tag not in configured]
    return tuple(warnings)


async def plan_channel(ctx: TenantContext, channel_id: int) -> TemplateDiff:
    templates = await ctx.platform.list_templates(ctx.tenant.channel(channel_id).type)
    wanted = await wanted_templates(ctx, templates)
    current = await ctx.optimove.get_channel_templates(channel_id)
    diff = diff_templates(channel_id, wanted,
                          {t.template_id: t.template_name for t in current})
    warnings = await unfilled_tags(ctx, channel_id, templates)
    for warning in warnings:
        ctx.log.warning("templates.unfilled_tag", channel=channel_id, detail=warning)
    return TemplateDiff(diff.channel_id, diff.add, diff.delete, diff.rename, warnings)


async def apply_diff(ctx: TenantContext, diff: TemplateDiff) -> None:
    """Deletes (removed and renamed) first, then adds (new and renamed), 100 a call."""
    doomed = sorted([*diff.delete, *diff.rename])
    for part in _batches(doomed):
        await ctx.optimove.delete_channel_templates(diff.channel_id, part)
    names = {**diff.add, **{tid: new for tid, (_, new) in diff.rename.items()}}
    for part in _batches(sorted(names)):
        await ctx.optimove.add_channel_templates(diff.channel_id, [
            ChannelTemplate(template_id=tid, template_name=names[tid]) for tid in part])


async def sync_templates(ctx: TenantContext, *, dry_run: bool = False) -> list[TemplateDiff]:
    """Sync every configured channel of the tenant; the diffs (applied unless dry run)."""
    diffs = []
    for channel_id in sorted(ctx.tenant.channels):
        diff = await plan_channel(ctx, channel_id)
        if not dry_run and not diff.empty:
            await apply_diff(ctx, diff)
            ctx.log.info("templates.synced", channel=channel_id, added=len(diff.add),
                         deleted=len(diff.delete), renamed=len(diff.rename))
        diffs.append(diff)
    return diffs


_last_sync: dict[tuple[str, int], float] = {}  # per tenant and store, in this process


async def template_sync_step(ctx: TenantContext) -> int:
    """The worker loop's step: re-sync when ``template_sync_seconds`` have passed (a
    failure is retried by the loop with its growing pause)."""
    interval = ctx.tenant.template_sync_seconds
    key, now = (ctx.name, id(ctx.store)), ctx.store.clock()
    if interval <= 0 or now - _last_sync.get(key, float("-inf")) < interval:
        return 0
    await sync_templates(ctx)
    _last_sync[key] = now
    return 0  # the next sync is an interval away: let the loop pause
