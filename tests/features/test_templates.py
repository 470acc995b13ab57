"""Template sync (flow 2): add, delete and rename reach Optimove, 100 a call."""

from __future__ import annotations

import pytest

from optibridge.domain import ChannelType
from optibridge.pipeline.templates import diff_templates
from optibridge.store.triggers import TemplateIdConflict
from tests.features.conftest import run
from tests.worlds import EMAIL, SMS, TENANT, TRIGGERED, World


def held(world: World) -> dict[int, dict[int, str]]:
    return {c: world.optimove.channel_templates(TENANT, c) for c in (EMAIL, SMS, TRIGGERED)}


def platform_of(world: World, kind: ChannelType) -> dict[int, str]:
    listed = run(_platform_templates(world, kind))
    return {t.id: t.name for t in listed}


async def _platform_templates(world: World, kind: ChannelType) -> list:  # type: ignore[type-arg]
    async with world.context() as ctx:
        return await ctx.platform.list_templates(kind)


def test_sync_adds_deletes_and_renames_in_batches_of_100(world: World) -> None:
    email = [world.platform.add_template(f"Mail {n}", ChannelType.EMAIL, "<p>x</p>")
             for n in range(150)]
    world.platform.add_template("Text", ChannelType.SMS, "x")
    dry = world.cli("templates", "sync", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"+ {email[0]} Mail 0" in dry.output
    assert held(world) == {EMAIL: {}, SMS: {}, TRIGGERED: {}}  # a dry run changes nothing
    first = world.cli("templates", "sync", "--tenant", TENANT)
    assert first.exit_code == 0, first.output
    emails, texts = platform_of(world, ChannelType.EMAIL), platform_of(world, ChannelType.SMS)
    assert held(world) == {EMAIL: emails, SMS: texts, TRIGGERED: emails}
    adds = [e for e in world.optimove.journal(TENANT) if e.function == "AddChannelTemplates"]
    assert sorted(len(e.body) for e in adds) == [1, 50, 50, 100, 100]

    world.platform.delete_template(email[0])
    world.platform.rename_template(email[1], "Mail one, renamed")
    new = world.platform.add_template("Fresh", ChannelType.EMAIL, "<p>y</p>")
    second = world.cli("templates", "sync")
    assert second.exit_code == 0, second.output
    assert f"~ {email[1]} Mail 1 -> Mail one, renamed" in second.output
    assert f"- {email[0]} Mail 0" in second.output and f"+ {new} Fresh" in second.output
    emails = platform_of(world, ChannelType.EMAIL)
    assert held(world) == {EMAIL: emails, SMS: texts, TRIGGERED: emails}
    assert held(world)[EMAIL][email[1]] == "Mail one, renamed" and email[0] not in emails
    again = world.cli("templates", "sync")
    assert again.output.count("in sync") == 3


def test_diff_is_pure() -> None:
    diff = diff_templates(1, {1: "a", 2: "B", 4: "d"}, {1: "a", 2: "b", 3: "c"})
    assert (dict(diff.add), dict(diff.delete), dict(diff.rename)) == (
        {4: "d"}, {3: "c"}, {2: ("b", "B")})


async def test_template_ids_are_stable_integers(world: World) -> None:
    store = await world.store()
    try:
        first = await store.template_ids(TENANT, ["17", "welcome-en", "2147483648", "0"])
        assert first["17"] == 17
        mapped = [first["welcome-en"], first["2147483648"], first["0"]]
        assert len(set(mapped)) == 3 and all(0 < m < 2**31 for m in mapped)
        again = await store.template_ids(TENANT, ["welcome-en", "17", "other"])
        assert again["welcome-en"] == first["welcome-en"] and again["17"] == 17
        assert again["other"] not in mapped
        with pytest.raises(TemplateIdConflict):
            await store.template_ids(TENANT, [str(first["welcome-en"])])
    finally:
        await store.db.dispose()


def test_sync_warns_of_tags_no_configured_attribute_fills(world: World) -> None:
    world.platform.add_template("Hello", ChannelType.EMAIL, "<p>Hi {{FirstName}}</p>")
    world.platform.add_template("Balance", ChannelType.EMAIL,
                                "<p>{{ FirstName }}, you have {{Balance}} points</p>")
    result = world.cli("templates", "sync", "--dry-run")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "warning" in line]
    assert any("'Balance'" in line and "{{Balance}}" in line for line in warnings), warnings
    assert not any("{{FirstName}}" in line for line in warnings), warnings
