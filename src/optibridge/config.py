"""Configuration: one TOML file plus environment overrides, validated with clear messages.

Environment overrides use ``OPTIBRIDGE__`` followed by the key path joined with ``__``, for
example ``OPTIBRIDGE__SERVER__DATABASE_URL`` or ``OPTIBRIDGE__TENANTS__ACME__PAGE_SIZE``.
Secrets are never written in the file: each secret has an ``*_env`` key naming the
environment variable that holds it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

ENV_PREFIX = "OPTIBRIDGE__"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class ChannelType(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _environ(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context or {}
    environ: Mapping[str, str] = context.get("environ", os.environ)
    return environ


def _read_secret(value: str | None, env_name: str | None, what: str,
                 environ: Mapping[str, str]) -> SecretStr | None:
    if value:
        return SecretStr(value)
    if env_name:
        found = environ.get(env_name)
        if not found:
            raise ValueError(f"{what}: environment variable {env_name} is not set or empty")
        return SecretStr(found)
    return None


class RateLimit(_Strict):
    requests: int = Field(50, ge=1, description="requests allowed in one window")
    per_seconds: float = Field(10.0, gt=0, description="length of the sliding window")


class ChannelConfig(_Strict):
    """One Optimove ChannelID served by this tenant's platform account."""

    type: ChannelType
    address_attribute: str = Field(min_length=1, description="customer attribute with the address")
    personalization: tuple[str, ...] = ()
    personalization_defaults: dict[str, str] = Field(default_factory=dict)
    triggered: bool = Field(False, description="the dedicated channel for EventTypeID 11")


class _WithApiKey(_Strict):
    """An API key read from the environment variable ``api_key_env`` (or, for tests and
    rehearsals only, given inline as ``api_key``)."""

    api_key: SecretStr | None = None
    api_key_env: str | None = None
    _key_of: ClassVar[str] = "the"

    @model_validator(mode="after")
    def _secret(self, info: ValidationInfo) -> Self:
        key = _read_secret(
            self.api_key.get_secret_value() if self.api_key else None, self.api_key_env,
            "api_key_env", _environ(info))
        if key is None:
            raise ValueError(f"set api_key_env (the variable holding {self._key_of} API key)")
        object.__setattr__(self, "api_key", key)
        return self

    def key(self) -> str:
        assert self.api_key is not None
        return self.api_key.get_secret_value()


class PlatformConfig(_WithApiKey):
    _key_of: ClassVar[str] = "the platform"
    base_url: str
    bounce_domain: int = Field(ge=1)
    rate_limit: RateLimit = RateLimit(requests=100, per_seconds=1.0)



class TenantConfig(_WithApiKey):
    """One Optimove client: its own credentials (seed 002 asks for a set per client)."""

    _key_of: ClassVar[str] = "the Optimove"
    optimove_url: str
    path_prefix: str = "/current"
    rate_limit: RateLimit = RateLimit()
    page_size: int = Field(10_000, ge=1, le=1_000_000)
    attribute_delimiter: str = Field(";", pattern=r"^[;,]$")
    attributes_batch_size: int = Field(1_000, ge=1, le=10_000)
    report_days: int = Field(7, ge=1, le=60, description="days to keep reporting after a send")
    report_interval_seconds: float = Field(120.0, gt=0)
    callback_window_seconds: float = Field(300.0, ge=0)
    channels: dict[int, ChannelConfig]
    platform: PlatformConfig
    trigger_window_seconds: float = Field(
        0.25, gt=0, le=60, description="gather triggers of one campaign/template this long")
    template_sync_seconds: float = Field(
        3600.0, ge=0, description="serve re-syncs channel templates this often; 0: never")

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError("must be empty or start with '/'")
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: dict[int, ChannelConfig]) -> dict[int, ChannelConfig]:
        if not value:
            raise ValueError("at least one channel is needed")
        return value


    def channel(self, channel_id: int) -> ChannelConfig:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise KeyError(f"channel {channel_id} is not configured") from None


class ServerConfig(_Strict):
    listen: str = Field("127.0.0.1:8080", pattern=r"^[^:]+:\d{1,5}$")
    public_url: str = Field(description="URL by which Optimove and the platform reach us")
    database_url: str = "sqlite:///optibridge.db"
    signing_secret: SecretStr | None = None
    signing_secret_env: str | None = None
    admin_token: SecretStr | None = None
    admin_token_env: str | None = None
    log_format: str = Field("auto", pattern="^(auto|json|console)$")

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _secrets(self, info: ValidationInfo) -> Self:
        environ = _environ(info)
        secret = _read_secret(
            self.signing_secret.get_secret_value() if self.signing_secret else None,
            self.signing_secret_env, "signing_secret_env", environ)
        if secret is None or len(secret.get_secret_value()) < 16:
            raise ValueError("signing secret: set signing_secret_env to a variable holding "
                             "at least 16 characters")
        object.__setattr__(self, "signing_secret", secret)
        token = _read_secret(
            self.admin_token.get_secret_value() if self.admin_token else None,
            self.admin_token_env, "admin_token_env", environ)
        object.__setattr__(self, "admin_token", token)
        return self

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def secret(self) -> bytes:
        assert self.signing_secret is not None
        return self.signing_secret.get_secret_value().encode()


class TimingConfig(_Strict):
    """Pauses of the background loops; the defaults suit production, rehearsals shorten them."""

    idle: float = Field(1.0, gt=0)
    in_doubt_wait: float = Field(30.0, ge=0)
    follow_min: float = Field(2.0, gt=0)
    follow_max: float = Field(60.0, gt=0)
    callback_margin: float = Field(60.0, ge=0)
    metrics_refresh: float = Field(4 * 3600.0, gt=0)
    lease_ttl: float = Field(30.0, ge=3)


class Config(_Strict):
    server: ServerConfig
    tenants: dict[str, TenantConfig]
    timing: TimingConfig = TimingConfig()

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, value: dict[str, TenantConfig]) -> dict[str, TenantConfig]:
        if not value:
            raise ValueError("at least one [tenants.NAME] table is needed")
        for name in value:
            if not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"tenant name {name!r}: use letters, digits, '-' and '_'")
        return value

    @model_validator(mode="after")
    def _lease_outlasts_window(self) -> Self:
        for name, tenant in self.tenants.items():
            if self.timing.lease_ttl < tenant.rate_limit.per_seconds + 5:
                raise ValueError(
                    f"timing.lease_ttl ({self.timing.lease_ttl:g} s) must be at least 5 s "
                    f"longer than tenants.{name}.rate_limit.per_seconds "
                    f"({tenant.rate_limit.per_seconds:g} s): a lease is usable only until "
                    "one rate-limit window before it expires")
        return self

    def tenant(self, name: str) -> TenantConfig:
        try:
            return self.tenants[name]
        except KeyError:
            known = ", ".join(sorted(self.tenants))
            raise ConfigError(f"unknown tenant {name!r} (configured: {known})") from None

    def listener_token(self, tenant: str) -> str:
        """The unguessable per-tenant token in the listener URL (Optimove does not sign)."""
        digest = hmac.new(self.server.secret(), f"listener:{tenant}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX):].split("__") if part]
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(path)} is not a table in the file")
            node = child
        node[path[-1]] = value


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any], source: str = "<memory>",
                 environ: Mapping[str, str] | None = None) -> Config:
    """Validate a configuration mapping, with environment overrides applied first."""
    environ = os.environ if environ is None else environ
    _apply_env(data, environ)
    try:
        return Config.model_validate(data, context={"environ": environ})
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the TOML file at ``path``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_config(data, str(path), environ)
