"""EventTypeID 14 ("Scheduled Campaign Integration SDK Flow"): the webhook's payload, the
campaign's metadata file and its customer files, Avro on Google Cloud Storage encrypted with
a customer-supplied key (optimove-api.md section 9)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from optibridge.config import EngagementFilesConfig
from optibridge.refusals import Refused
from optibridge.safejson import JsonBodyError, id_field

CSEK_REASONS = {"resourceIsEncryptedWithCustomerEncryptionKey", "customerEncryptionKeyIsIncorrect",
                "customerEncryptionKeyFormatIsInvalid", "customerEncryptionKeySha256IsInvalid",
                "resourceNotEncryptedWithCustomerEncryptionKey"}


class EngagementPayloadError(Refused):
    """The webhook's payload cannot be used; the message names the field."""


class EngagementFileError(Exception):
    """A metadata or customer file could not be read; the message names the file."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


@dataclass(frozen=True)
class EngagementNotice:
    """Where one campaign's files are (the webhook's payload, validated)."""

    campaign_id: int
    channel_id: int
    bucket: str
    customers_folder: str
    metadata_path: str
    decryption_key: str = field(repr=False)  # base64 AES-256 CSEK: a secret
    engagement_id: int | None = None
    tenant_id: int | None = None

    def customer_file(self, number: int) -> str:
        """``customers_file{NNN}.deflate.avro``, NNN from 001 to NumberOfFiles inclusive."""
        return f"{self.customers_folder.rstrip('/')}/customers_file{number:03d}.deflate.avro"

    def url(self, name: str) -> str:
        return f"gs://{self.bucket}/{name}"


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name.lower())
    if not isinstance(value, str) or not value.strip():
        raise EngagementPayloadError(f"{name} is missing or not a non-empty string")
    return value.strip()


def _int(fields: Mapping[str, Any], name: str, required: bool) -> int | None:
    try:
        return id_field(fields.get(name.lower()), name, required=required)
    except JsonBodyError as error:
        raise EngagementPayloadError(error.reason) from None


def parse_engagement(payload: Mapping[str, Any], files: EngagementFilesConfig | None = None
                     ) -> EngagementNotice:
    """Validate an EventTypeID 14 payload (keys in any case); with the tenant's ``files``
    settings, refuse one addressed to another Optimove tenant."""
    fields = {str(k).lower(): v for k, v in payload.items()}
    key = _text(fields, "DecryptionKey")
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise EngagementPayloadError("DecryptionKey is not base64") from None
    if len(raw) != 32:
        raise EngagementPayloadError(
            f"DecryptionKey must be a base64 AES-256 key (32 bytes), got {len(raw)} bytes")
    bucket = _text(fields, "BucketName")
    if "/" in bucket:
        raise EngagementPayloadError(f"BucketName {bucket!r} is not a bucket name")
    tenant_id = _int(fields, "TenantID", False)
    expected = files.optimove_tenant_id if files else None
    if expected is not None and tenant_id != expected:
        raise EngagementPayloadError(
            f"TenantID {tenant_id} is not this tenant's Optimove TenantID ({expected})")
    campaign_id, channel_id = _int(fields, "CampaignID", True), _int(fields, "ChannelID", True)
    assert campaign_id is not None and channel_id is not None
    return EngagementNotice(
        campaign_id=campaign_id, channel_id=channel_id, bucket=bucket,
        customers_folder=_text(fields, "CustomersFolderPath"),
        metadata_path=_text(fields, "MetadataFilePath"), decryption_key=key,
        engagement_id=_int(fields, "EngagementID", False), tenant_id=tenant_id)


class EngagementMetadata(BaseModel):
    """The metadata file's keys the connector uses (the others are kept, unread)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    campaign_id: int = Field(alias="CampaignID")
    channel_id: int = Field(alias="ChannelID")
    template_id: int = Field(alias="TemplateID")
    scheduled_time: dt.datetime = Field(alias="ScheduledTime")
    number_of_files: int = Field(alias="NumberOfFiles", ge=0, le=99_999)
    number_of_customers: int | None = Field(None, alias="NumberOfCustomers", ge=0)

    @field_validator("scheduled_time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        if isinstance(value, str):  # "2024-03-30T09:00:00Z" or "2024-03-30 09:00:00"
            return value.strip().replace(" ", "T", 1)
        return value

    @field_validator("scheduled_time")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value


def parse_metadata(name: str, data: bytes) -> EngagementMetadata:
    try:
        return EngagementMetadata.model_validate_json(data)
    except ValidationError as error:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                          for e in error.errors()[:5])
        raise EngagementFileError(name, f"metadata is not usable ({where})") from None


class EngagementBucket:
    """Reads one tenant's engagement files with ``google-cloud-storage`` (blocking calls:
    run them in a thread)."""

    def __init__(self, settings: EngagementFilesConfig) -> None:
        self.settings = settings
        self._client: Any = None

    def _storage(self) -> Any:
        if self._client is None:
            from google.cloud import storage

            options = {"api_endpoint": self.settings.endpoint} if self.settings.endpoint \
                else None
            if self.settings.credentials_file:
                self._client = storage.Client.from_service_account_json(
                    self.settings.credentials_file, client_options=options)
            elif self.settings.anonymous:  # an emulator: no Google credentials
                from google.auth.credentials import AnonymousCredentials

                self._client = storage.Client(project="optibridge",
                                              credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                                              client_options=options)
            else:
                self._client = storage.Client()
        return self._client

    def download(self, notice: EngagementNotice, name: str, into: IO[bytes]) -> None:
        """Write the object ``name`` of the notice's bucket into ``into``, decrypted with
        the notice's key (the client checks the object's MD5/CRC32C as it reads)."""
        from google.api_core import exceptions

        blob = self._storage().bucket(notice.bucket).blob(
            name, encryption_key=base64.b64decode(notice.decryption_key))
        where = notice.url(name)
        try:
            blob.download_to_file(into, timeout=self.settings.timeout_seconds)
        except exceptions.NotFound:
            raise EngagementFileError(where, "the file is missing (404)") from None
        except exceptions.BadRequest as error:
            # A download's error carries GCS's JSON body in its message, not in .errors.
            reasons = {reason for reason in CSEK_REASONS if reason in str(error)}
            if reasons:
                raise EngagementFileError(
                    where, f"the DecryptionKey does not open it ({', '.join(sorted(reasons))})"
                ) from None
            raise EngagementFileError(where, f"refused: {error.message}") from None
        except exceptions.GoogleAPICallError as error:
            raise EngagementFileError(where, f"{error.code} {error.message}") from None
        except Exception as error:  # transport, timeout, checksum mismatch
            raise EngagementFileError(where, f"{type(error).__name__}: {error}") from None

    def read_metadata(self, notice: EngagementNotice) -> EngagementMetadata:
        import io

        buffer = io.BytesIO()
        self.download(notice, notice.metadata_path, buffer)
        return parse_metadata(notice.url(notice.metadata_path), buffer.getvalue())


def avro_chunks(name: str, file: IO[bytes], size: int,
                needed: tuple[str, ...]) -> Iterator[list[dict[str, Any]]]:
    """The records of an Avro object-container file, ``size`` at a time; the file must have
    the ``needed`` fields."""
    import fastavro

    try:
        reader = fastavro.reader(file)
        schema = reader.writer_schema
        names = {f["name"] for f in schema.get("fields", [])} if isinstance(schema, dict) \
            else set()
        missing = [n for n in needed if n not in names]
        if missing:
            raise EngagementFileError(name, f"its records have no field {', '.join(missing)} "
                                      f"(they have: {', '.join(sorted(names))}); "
                                      "set tenants.NAME.files.fields")
        chunk: list[dict[str, Any]] = []
        for record in reader:
            chunk.append(record)  # type: ignore[arg-type]
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    except EngagementFileError:
        raise
    except Exception as error:  # fastavro raises EOFError, zlib.error, ValueError ... here
        raise EngagementFileError(name, f"not a readable Avro file (truncated or corrupt: "
                                  f"{type(error).__name__}: {error})") from None


def metadata_json(metadata: EngagementMetadata) -> str:
    return json.dumps(metadata.model_dump(mode="json", by_alias=True))
