"""Configuration: the example loads; every mistake is named with its key and rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optibridge.cli import app
from optibridge.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).parent.parent / "examples" / "optibridge.toml"
SECRETS = {"OPTIBRIDGE_SIGNING_SECRET": "x" * 20, "OPTIBRIDGE_ADMIN_TOKEN": "admin",
           "ACME_OPTIMOVE_API_KEY": "secret-opti-7731", "ACME_PLATFORM_API_KEY": "secret-plat-9913"}


def minimal() -> dict:  # type: ignore[type-arg]
    return {"server": {"public_url": "https://b.example", "signing_secret_env": "S"},
            "tenants": {"acme": {"optimove_url": "https://api5.optimove.net",
                                 "api_key_env": "K",
                                 "channels": {"504": {"type": "email",
                                                      "address_attribute": "Email"}},
                                 "platform": {"base_url": "https://p.example",
                                              "api_key_env": "P", "bounce_domain": 1}}}}


ENV = {"S": "s" * 16, "K": "opti-key", "P": "plat-key"}


def test_the_example_config_loads_with_its_secrets_from_the_environment() -> None:
    config = load_config(EXAMPLE, environ=SECRETS)
    acme = config.tenant("acme")
    assert acme.key() == "secret-opti-7731" and acme.platform.key() == "secret-plat-9913"
    assert acme.channel(505).type == "sms"
    assert acme.rate_limit.requests == 50 and acme.rate_limit.per_seconds == 10
    assert "secret-" not in repr(config)  # secrets stay hidden


def test_environment_overrides_reach_nested_keys() -> None:
    env = {**ENV, "OPTIBRIDGE__TENANTS__ACME__PAGE_SIZE": "2500",
           "OPTIBRIDGE__SERVER__DATABASE_URL": "postgresql://db/x"}
    config = parse_config(minimal(), environ=env)
    assert config.tenant("acme").page_size == 2500
    assert config.server.database_url == "postgresql://db/x"


@pytest.mark.parametrize(("change", "where", "rule"), [
    (lambda d: d["tenants"]["acme"].update(page_size=0), "tenants.acme.page_size",
     "greater than or equal to 1"),
    (lambda d: d["tenants"]["acme"]["channels"]["504"].update(type="fax"),
     "tenants.acme.channels.504.type", "'email' or 'sms'"),
    (lambda d: d["tenants"]["acme"].update(colour="red"), "tenants.acme.colour",
     "Extra inputs are not permitted"),
    (lambda d: d["server"].update(public_url="bridge.example"), "server.public_url",
     "http:// or https://"),
    (lambda d: d["tenants"]["acme"].update(api_key_env="MISSING"), "tenants.acme",
     "MISSING is not set"),
    (lambda d: d["tenants"]["acme"]["platform"].pop("bounce_domain"),
     "tenants.acme.platform.bounce_domain", "Field required"),
    (lambda d: d["tenants"]["acme"].update(channels={}), "tenants.acme.channels",
     "at least one channel"),
    (lambda d: d.update(timing={"lease_ttl": 8}), "(top level)",
     "must be at least 5 s longer"),
    (lambda d: d["server"].update(signing_secret_env="SHORT"), "server",
     "at least 16 characters"),
])
def test_each_mistake_names_its_key_and_rule(change: object, where: str, rule: str) -> None:
    data = minimal()
    change(data)  # type: ignore[operator]
    with pytest.raises(ConfigError) as raised:
        parse_config(data, "acme.toml", environ={**ENV, "SHORT": "short"})
    message = str(raised.value)
    assert message.startswith("invalid configuration in acme.toml")
    assert re.search(rf"^  {re.escape(where)}: .*{re.escape(rule)}", message, re.M), message


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(ConfigError, match=r"broken.toml: not valid TOML"):
        load_config(broken)


def test_an_unknown_tenant_lists_the_configured_ones() -> None:
    config = parse_config(minimal(), environ=ENV)
    with pytest.raises(ConfigError, match=r"unknown tenant 'nope' \(configured: acme\)"):
        config.tenant("nope")


def test_the_cli_says_what_is_wrong_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "optibridge.toml"
    bad.write_text('[server]\npublic_url = "ftp://x"\n')
    result = CliRunner().invoke(app, ["listeners", "list", "-t", "acme", "-c", str(bad)])
    assert result.exit_code == 2
    assert "server.public_url" in result.output and "http:// or https://" in result.output
