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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any, ClassVar, Self, get_args, get_origin

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

from optibridge.domain import ChannelType
from optibridge.events_config import EngagementEventsConfig, Reporting

ENV_PREFIX = "OPTIBRIDGE__"
# Secret variables that may be left unset: without the admin token /ui and /metrics answer
# only localhost; the saveEvent token is needed only by a tenant reporting through it
# (TenantConfig checks that).
OPTIONAL_VARIABLES = frozenset({"admin_token_env", "token_env"})


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration, and where it came from."""

    where: str  # the key path, e.g. "tenants.acme.page_size", or "(top level)"
    message: str
    variable: str | None = None  # the environment variable at fault, if one is
    missing: bool = False  # the variable is not set: the fix is to export it

    def fix(self, source: str) -> str:
        if self.missing:
            return f"export {self.variable}=..."
        if self.variable:
            return f"fix {self.variable} in the environment"
        return f"fix {self.where} in {source}"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""

    def __init__(self, message: str, problems: tuple[ConfigProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _environ(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context or {}
    environ: Mapping[str, str] = context.get("environ", os.environ)
    return environ


def _scanned(info: ValidationInfo) -> bool:
    """Whether the caller reports missing variables itself, all at once (parse_config)."""
    return bool((info.context or {}).get("scanned"))


def _read_secret(value: str | None, env_name: str | None, what: str,
                 info: ValidationInfo, optional: bool = False) -> SecretStr | None:
    if value:
        return SecretStr(value)
    if env_name:
        found = _environ(info).get(env_name)
        if found:
            return SecretStr(found)
        if not optional and not _scanned(info):
            raise ValueError(f"{what}: environment variable {env_name} is not set or empty")
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
            "api_key_env", info)
        if key is None and not self.api_key_env:
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



class EngagementFilesConfig(_Strict):
    """EventTypeID 14: where the audience files are read from, and which of their Avro
    fields hold what (Optimove publishes no schema; each file carries its own)."""

    credentials_file: str | None = Field(
        None, description="service-account JSON; unset: the environment's default credentials")
    anonymous: bool = Field(False, description="no credentials at all (an emulator)")
    endpoint: str | None = Field(
        None, description="a GCS-compatible endpoint (emulators); unset: Google's")
    customer_id_field: str = Field("CustomerID", min_length=1)
    fields: dict[str, str] = Field(
        default_factory=dict, description="channel attribute -> Avro field, where they differ")
    optimove_tenant_id: int | None = Field(
        None, description="refuse webhooks whose TenantID is another one")
    timeout_seconds: float = Field(60.0, gt=0)
    check_customer_count: bool = Field(
        True, description="hold a campaign whose files hold other than NumberOfCustomers")

    def field_for(self, attribute: str) -> str:
        return self.fields.get(attribute, attribute)


class ReadbackConfig(_Strict):
    """The read-back call (seed 001's GetCustomerChannelInteractions, or its announced
    replacement GetCampaignEngagementMetrics, whose path and rows are not public). An answer
    in another row shape makes read-back unusable: in-doubt batches are held, never guessed."""

    function: str = Field("GetCustomerChannelInteractions", min_length=1,
                          pattern=r"^[A-Za-z0-9_]+$")
    path: str = Field("customers/GetCustomerChannelInteractions", min_length=1,
                      description="after optimove_url and path_prefix")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if "://" in value or "?" in value:
            raise ValueError("a path after optimove_url and path_prefix, without a query")
        return value.strip("/")

    def call(self) -> tuple[str, str]:
        return self.function, self.path


class TenantConfig(_WithApiKey):
    """One Optimove client: its own credentials (seed 002 asks for a set per client)."""

    _key_of: ClassVar[str] = "the Optimove"
    optimove_url: str
    path_prefix: str = "/current"
    rate_limit: RateLimit = RateLimit()
    page_size: int = Field(10_000, ge=1, le=1_000_000)
    pulls_at_once: int = Field(2, ge=1, le=16, description=(
        "campaigns of this tenant whose audiences are pulled at the same time, sharing "
        "its rate limit"))
    attribute_delimiter: str = Field(";", pattern=r"^[;,]$")
    attributes_batch_size: int = Field(1_000, ge=1, le=10_000)
    report_days: int = Field(7, ge=1, le=60, description="days to keep reporting after a send")
    report_interval_seconds: float = Field(120.0, gt=0)
    callback_window_seconds: float = Field(300.0, ge=0)
    channels: dict[int, ChannelConfig]
    platform: PlatformConfig
    trigger_window_seconds: float = Field(
        0.25, gt=0, le=60, description="gather triggers of one campaign/template this long")
    trigger_repeat_seconds: float = Field(
        3600.0, ge=0, description="a trigger identical to one recorded this long before "
        "(customer, campaign, channel, template, payload) is not sent again; 0: off")
    template_sync_seconds: float = Field(
        3600.0, ge=0, description="serve re-syncs channel templates this often; 0: never")
    files: EngagementFilesConfig = EngagementFilesConfig()
    reporting: Reporting = Field(
        Reporting.INTERACTIONS, description="interactions (UpdateCampaignInteractions) or "
        "engagement_events (saveEvent)")
    engagement_events: EngagementEventsConfig = EngagementEventsConfig()
    readback: ReadbackConfig = ReadbackConfig()

    @model_validator(mode="after")
    def _reporting_backend(self) -> Self:
        if self.reporting == Reporting.ENGAGEMENT_EVENTS:
            problems = self.engagement_events.problems()
            if problems:
                raise ValueError("reporting = \"engagement_events\" needs engagement_events."
                                 + "; engagement_events.".join(problems))
        return self

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
    # Processes that decode audience pages beside the event loop, which stores them
    # meanwhile (0: decode on the event loop; what a pull of one core's worth needs is 1).
    decode_processes: int = Field(1, ge=0, le=8)

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _secrets(self, info: ValidationInfo) -> Self:
        secret = _read_secret(
            self.signing_secret.get_secret_value() if self.signing_secret else None,
            self.signing_secret_env, "signing_secret_env", info)
        missing = secret is None and bool(self.signing_secret_env)  # reported with the others
        if not missing and (secret is None or len(secret.get_secret_value()) < 16):
            raise ValueError("signing secret: set signing_secret_env to a variable holding "
                             "at least 16 characters")
        object.__setattr__(self, "signing_secret", secret)
        # Optional: without the variable, /ui and /metrics answer only this machine.
        token = _read_secret(
            self.admin_token.get_secret_value() if self.admin_token else None,
            self.admin_token_env, "admin_token_env", info, optional=True)
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
    in_doubt_wait: float = Field(30.0, ge=0)  # the horizon's floor (README: in-doubt)
    in_doubt_ceiling: float = Field(21_600.0, gt=0)  # ... and its ceiling
    in_doubt_probes: int = Field(3, ge=1, le=20)  # agreeing empty reads before a re-send
    readback_per_pass: int = Field(10, ge=1, le=1_000)  # read-back calls per reporting pass
    follow_min: float = Field(2.0, gt=0)
    follow_max: float = Field(60.0, gt=0)
    callback_margin: float = Field(60.0, ge=0)
    # While one of a tenant's audience pulls or uploads is under way, its callbacks are
    # mapped in a pass this often at most: those are a campaign's steps to READY (the pull
    # on Optimove's clock), mapping can wait.
    map_during_campaigns: float = Field(10.0, ge=0)
    metrics_refresh: float = Field(4 * 3600.0, gt=0)
    lease_ttl: float = Field(30.0, ge=3)
    # After an error a later call can get past (a revoked key, a proxy, 429, 5xx), reporting
    # pauses this long, doubling each time it fails again, up to the longest.
    report_retry_first: float = Field(1.0, gt=0)
    report_retry_max: float = Field(60.0, gt=0)
    # A failing item of background work (a notification, a pull, a send, a cancellation,
    # a metrics chunk) waits retry_first seconds, doubling up to retry_longest; after
    # max_refusals refusals about the item itself it stops until an operator requeues it.
    retry_first: float = Field(2.0, gt=0)
    retry_longest: float = Field(600.0, gt=0)
    max_refusals: int = Field(6, ge=1)
    # Pruning: the callback inbox, problems and journals are kept for the longest report
    # period (report_days) plus this margin, and pruned this often.
    prune_margin_days: float = Field(7.0, ge=0)
    prune_every: float = Field(3600.0, gt=0)


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


KeyPath = tuple[str, ...]


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[KeyPath, str]:
    """Apply the ``OPTIBRIDGE__...`` overrides; returns which key path each one set."""
    applied: dict[KeyPath, str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX):].split("__") if part]
        if not path:
            continue
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(path)} is not a table in the file")
            node = child
        node[path[-1]] = value
        applied[tuple(path)] = name
    return applied


def _missing_variables(data: Any, environ: Mapping[str, str], path: KeyPath = ()
                       ) -> Iterator[ConfigProblem]:
    """Every ``*_env`` key naming a variable that is not set (all of them, not the first)."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        here = (*path, str(key))
        if isinstance(value, dict):
            yield from _missing_variables(value, environ, here)
        elif (str(key).endswith("_env") and isinstance(value, str) and value
              and key not in OPTIONAL_VARIABLES and not data.get(str(key)[:-4])
              and not environ.get(value)):
            yield ConfigProblem(".".join(here), f"environment variable {value} is not set "
                                "or empty", variable=value, missing=True)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that holds the keys at ``loc`` (dict keys such as tenant names skipped)."""
    model: type[BaseModel] = Config
    parts = [str(part) for part in loc]
    while parts:
        field = model.model_fields.get(parts.pop(0))
        if field is None:
            return None
        annotation = field.annotation
        if get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
            if not parts:
                return None
            parts.pop(0)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return ""
    close = get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _problems(error: ValidationError, overrides: dict[KeyPath, str]) -> list[ConfigProblem]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        where = ".".join(str(part) for part in loc) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = f"unknown key{_did_you_mean(loc)}"
        as_text = tuple(str(part) for part in loc)
        variable = next((name for path, name in overrides.items()
                         if as_text[:len(path)] == path), None)
        problems.append(ConfigProblem(where, message, variable=variable))
    return problems


def _describe(problems: list[ConfigProblem], source: str) -> str:
    lines = []
    in_file = [p for p in problems if p.variable is None]
    overridden = [p for p in problems if p.variable and not p.missing]
    missing = [p for p in problems if p.missing]
    if in_file:
        lines.append(f"invalid configuration in {source}:")
        lines += [f"  {p.where}: {p.message}" for p in in_file]
    if overridden:
        lines.append("invalid environment override:")
        lines += [f"  {p.variable} (sets {p.where}): {p.message}" for p in overridden]
    if missing:
        lines.append(f"environment variables named in {source} are not set; export them:")
        width = max(len(p.fix(source)) for p in missing)
        lines += [f"  {p.fix(source):<{width}}  # {p.where}" for p in missing]
    return "\n".join(lines)


def parse_config(data: dict[str, Any], source: str = "<memory>",
                 environ: Mapping[str, str] | None = None) -> Config:
    """Validate a configuration mapping, with environment overrides applied first.

    Every problem is reported at once: the file's, the overrides' and every secret variable
    that is not set."""
    environ = os.environ if environ is None else environ
    overrides = _apply_env(data, environ)
    problems = list(_missing_variables(data, environ))
    config = None
    try:
        config = Config.model_validate(data, context={"environ": environ, "scanned": True})
    except ValidationError as error:
        problems = _problems(error, overrides) + problems
    if problems or config is None:
        raise ConfigError(_describe(problems, source), tuple(problems))
    return config


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
