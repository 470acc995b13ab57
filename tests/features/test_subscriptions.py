"""Subscriptions: each mode reaches the sandbox with the right batch sizes; bad CSV rows
are reported and written aside while the rest is pushed."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from tests.features.conftest import run, seed_reported
from tests.worlds import EMAIL, TENANT, World


def write_csv(path: Path, count: int, bad: bool = True) -> dict[str, int]:
    """``count`` good rows (every third opted out) after a header, plus bad rows."""
    want: dict[str, int] = {}
    lines = ["customer_id,opt_in"]
    for i in range(count):
        want[f"S{i:05d}"] = 0 if i % 3 == 0 else 1
        lines.append(f"S{i:05d},{'no' if i % 3 == 0 else 'yes'}")
        if bad and i == 10:
            lines += ["S99999,maybe", ",1", "S00003,1", "S77777,1,extra"]
    path.write_text("\n".join(lines) + "\n")
    return want


def calls(world: World, function: str) -> list[Any]:
    return [e.body for e in world.optimove.journal(TENANT)
            if e.function == function and e.status == 200]


def test_attribute_mode_batches_and_rejects(world: World, tmp_path: Path) -> None:
    source = tmp_path / "optin.csv"
    want = write_csv(source, 2_500)
    result = world.cli("subscriptions", "push", "--mode", "attribute", "--csv", str(source),
                       "--attribute", "EmailOptIn")
    assert result.exit_code == 0, result.output
    assert "row 13: opt-in state 'maybe'" in result.output
    with (tmp_path / "optin.csv.rejects.csv").open() as handle:
        rejects = list(csv.DictReader(handle))
    assert [(r["row"], r["reason"][:20]) for r in rejects] == [
        ("13", "opt-in state 'maybe'"), ("14", "the customer ID is e"),
        ("15", "customer S00003 is a"), ("16", "expected 2 columns (")]
    assert [body["Name"] for body in calls(world, "AddCustomerAttribute")] == ["EmailOptIn"]
    updates = calls(world, "UpdateCustomerAttributes")
    assert [len(b["CustomerNewAttributesValuesList"]) for b in updates] == [1000, 1000, 500]
    held = world.optimove.customer_attributes(TENANT)
    assert {c: v["EmailOptIn"] for c, v in held.items()} == want


def test_preference_mode_batches_of_50000(world: World, tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    want = write_csv(source, 60_300, bad=False)
    result = world.cli("subscriptions", "push", "--mode", "preference", "--csv", str(source),
                       "--channel", str(EMAIL), "--opt-in-mode", "2", "--opt-out-mode", "0")
    assert result.exit_code == 0, result.output
    sizes = [(b["CommunicationMode"], len(b["CustomerIDs"]))
             for b in calls(world, "SetCustomerChannelPreference")]
    assert sizes == [(2, 40_200), (0, 20_100)]
    held = {p.customer_id: p.communication_mode for p in world.optimove.preferences(TENANT)}
    assert held == {c: 2 if v else 0 for c, v in want.items()}
    small = world.cli("subscriptions", "push", "--mode", "preference", "--csv", str(source),
                      "--channel", str(EMAIL), "--batch-size", "25000")
    assert small.exit_code == 0, small.output
    later = [len(b["CustomerIDs"]) for b in calls(world, "SetCustomerChannelPreference")][2:]
    assert later == [25_000, 15_200, 20_100]


def test_file_mode_from_bounces(world: World, tmp_path: Path) -> None:
    customers = run(seed_reported(world, 4242, EMAIL, 40, bounced_every=4))
    output = tmp_path / "subscriptions.csv"
    result = world.cli("subscriptions", "push", "--mode", "file", "--bounces",
                       "--channel", str(EMAIL), "--attribute", "EmailOptIn", "-o", str(output))
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(output.open()))
    assert rows[0] == ["CustomerID", "EmailOptIn"]
    assert rows[1:] == [[c, "0"] for c in customers[::4]]
    pref = world.cli("subscriptions", "push", "--mode", "preference", "--bounces",
                     "--channel", str(EMAIL))
    assert pref.exit_code == 0, pref.output
    assert {p.customer_id for p in world.optimove.preferences(TENANT)} == set(customers[::4])


def test_bad_invocations_change_nothing(world: World, tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    write_csv(source, 5, bad=False)
    for args in (["--mode", "preference", "--csv", str(source)],
                 ["--mode", "file", "--csv", str(source)],
                 ["--mode", "attribute"],
                 ["--mode", "attribute", "--csv", str(source), "--batch-size", "10001"]):
        result = world.cli("subscriptions", "push", *args)
        assert result.exit_code != 0, args
    assert [e.function for e in world.optimove.journal(TENANT)] == []
