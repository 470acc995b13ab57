"""Configuration: the example loads; every mistake is named with its key and rule."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import get_args, get_origin

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from optibridge.cli import app
from optibridge.config import (
    Config,
    ConfigError,
    PlatformConfig,
    TenantConfig,
    TimingConfig,
    load_config,
    parse_config,
)

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
     "unknown key"),
    (lambda d: d["server"].update(public_url="bridge.example"), "server.public_url",
     "http:// or https://"),
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


def test_every_missing_variable_is_named_at_once_with_export_as_the_fix() -> None:
    data = minimal()
    data["server"]["admin_token_env"] = "UNSET_ADMIN_TOKEN"  # optional: not a problem
    with pytest.raises(ConfigError) as raised:
        parse_config(data, "acme.toml", environ={})
    message = str(raised.value)
    assert "export them" in message and "invalid configuration" not in message, message
    for variable, key in (("S", "server.signing_secret_env"), ("K", "tenants.acme.api_key_env"),
                          ("P", "tenants.acme.platform.api_key_env")):
        assert re.search(rf"^  export {variable}=\.\.\.\s+# {re.escape(key)}$", message, re.M), \
            message
    assert "UNSET_ADMIN_TOKEN" not in message
    assert [p.fix("acme.toml") for p in raised.value.problems] == [
        "export S=...", "export K=...", "export P=..."]


def test_an_unset_admin_token_variable_leaves_the_admin_pages_to_localhost() -> None:
    data = minimal()
    data["server"]["admin_token_env"] = "UNSET_ADMIN_TOKEN"
    assert parse_config(data, environ=ENV).server.admin_token is None
    token = parse_config(data, environ={**ENV, "UNSET_ADMIN_TOKEN": "t0ken"}).server.admin_token
    assert token is not None and token.get_secret_value() == "t0ken"


def test_an_invalid_override_is_named_as_the_variable_not_the_file() -> None:
    env = {**ENV, "OPTIBRIDGE__TENANTS__ACME__PAGE_SIZE": "abc"}
    with pytest.raises(ConfigError) as raised:
        parse_config(minimal(), "acme.toml", environ=env)
    message = str(raised.value)
    assert "acme.toml" not in message, message
    assert re.search(r"^  OPTIBRIDGE__TENANTS__ACME__PAGE_SIZE \(sets tenants.acme.page_size\)"
                     r": Input should be a valid integer", message, re.M), message
    assert raised.value.problems[0].fix("acme.toml") == (
        "fix OPTIBRIDGE__TENANTS__ACME__PAGE_SIZE in the environment")


@pytest.mark.parametrize(("change", "where", "suggestion"), [
    (lambda d: d["tenants"]["acme"].update(page_sise=5), "tenants.acme.page_sise", "page_size"),
    (lambda d: d["server"].update(databse_url="x"), "server.databse_url", "database_url"),
    (lambda d: d["tenants"]["acme"]["platform"].update(bounce_domian=1),
     "tenants.acme.platform.bounce_domian", "bounce_domain"),
    (lambda d: d["tenants"]["acme"]["channels"]["504"].update(adress_attribute="E"),
     "tenants.acme.channels.504.adress_attribute", "address_attribute"),
    (lambda d: d.update(timeing={}), "timeing", "timing"),
])
def test_an_unknown_key_gets_a_did_you_mean(change: object, where: str, suggestion: str) -> None:
    data = minimal()
    change(data)  # type: ignore[operator]
    with pytest.raises(ConfigError) as raised:
        parse_config(data, "acme.toml", environ=ENV)
    assert f"  {where}: unknown key; did you mean {suggestion!r}?" in str(raised.value)


INLINE_SECRETS = {"signing_secret", "admin_token", "api_key", "token"}  # named in a comment only


def _undocumented(model: type[BaseModel], tables: list[dict], where: str) -> list[str]:  # type: ignore[type-arg]
    """Keys of ``model`` that no table of the example sets, recursively."""
    found = []
    for name, field in model.model_fields.items():
        values = [table[name] for table in tables if name in table]
        if not values:
            if name not in INLINE_SECRETS:
                found.append(f"{where}{name}")
            continue
        annotation = field.annotation
        if get_origin(annotation) is dict and isinstance(get_args(annotation)[1], type) \
                and issubclass(get_args(annotation)[1], BaseModel):
            inner = [entry for value in values for entry in value.values()]
            found += _undocumented(get_args(annotation)[1], inner, f"{where}{name}.*.")
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _undocumented(annotation, values, f"{where}{name}.")
    return found


def test_the_example_names_every_key_of_the_config_models() -> None:
    example = tomllib.loads(EXAMPLE.read_text())
    assert _undocumented(Config, [example], "") == []
    text = EXAMPLE.read_text()
    assert all(f"{name} = " in text for name in INLINE_SECRETS)


def test_the_example_gives_the_defaults_of_the_models() -> None:
    """A key the example sets to another value than its default would mislead a reader."""
    config = load_config(EXAMPLE, environ=SECRETS)
    assert config.timing == TimingConfig()
    acme = config.tenant("acme")
    for name in ("page_size", "attributes_batch_size", "report_days", "report_interval_seconds",
                 "callback_window_seconds", "trigger_window_seconds", "template_sync_seconds",
                 "path_prefix", "attribute_delimiter", "rate_limit"):
        assert getattr(acme, name) == TenantConfig.model_fields[name].default, name
    assert acme.platform.rate_limit == PlatformConfig.model_fields["rate_limit"].default
