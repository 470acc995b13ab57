"""EventTypeID 14: open the campaign the webhook announces, then read its audience from the
Avro files into the store, file by file, through the same audience storage as the REST pull.

The resume point is recorded per file (``start_engagement_file``) and per stored chunk (the
campaign's ``next_skip``), so a crash repeats the download of at most one file and stores
nobody twice. A file that cannot be read (missing, truncated, refused key) holds the campaign
with a problem naming the file and is tried again later; nothing is sent until every file is
read.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from optibridge.config import ChannelConfig, EngagementFilesConfig
from optibridge.domain import (
    AudienceEntry,
    CampaignRecord,
    EngagementRecord,
    NotificationRecord,
    fields_json,
)
from optibridge.optimove.engagement import (
    EngagementBucket,
    EngagementFileError,
    EngagementMetadata,
    EngagementNotice,
    EngagementPayloadError,
    avro_chunks,
    metadata_json,
    parse_engagement,
)
from optibridge.pipeline.audience import pull_audience
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.entries import usable_address

RETRY_FIRST, RETRY_MAX = 5.0, 300.0  # seconds before reading a failed file again
_buckets: dict[tuple[str, int], EngagementBucket] = {}


def bucket_for(ctx: TenantContext) -> EngagementBucket:
    """One storage client per tenant settings (it keeps its connections)."""
    key = (ctx.name, id(ctx.tenant.files))
    if key not in _buckets:
        _buckets[key] = EngagementBucket(ctx.tenant.files)
    return _buckets[key]


async def open_engagement_campaign(ctx: TenantContext, note: NotificationRecord) -> str:
    """Act on a recorded EventTypeID 14: the campaign and where its files are, once."""
    try:
        notice = parse_engagement(json.loads(note.payload), ctx.tenant.files)
    except EngagementPayloadError as error:  # validated at intake; a config change since
        return f"ignored EventTypeID 14: {error}"
    channel = ctx.tenant.channels.get(notice.channel_id)
    if channel is None or channel.triggered:
        return f"channel {notice.channel_id} is not a configured scheduled channel"
    campaign, created = await ctx.store.open_engagement(
        ctx.name, notice.campaign_id, notice.channel_id, bucket=notice.bucket,
        customers_folder=notice.customers_folder, metadata_path=notice.metadata_path,
        decryption_key=notice.decryption_key, engagement_id=notice.engagement_id)
    if created:
        ctx.log.info("campaign.opened", campaign=notice.campaign_id, channel=notice.channel_id,
                     source="files", bucket=notice.bucket)
    state = "started from files" if created else f"already {campaign.stage}"
    return f"campaign {notice.campaign_id} channel {notice.channel_id}: {state}"


async def pull_campaign(ctx: TenantContext, campaign: CampaignRecord) -> int:
    """Pull a campaign's audience from wherever it comes from; 1 when there was work."""
    engagement = await ctx.store.engagement_of(campaign.id)
    if engagement is None:
        await pull_audience(ctx, campaign)
        return 1
    if engagement.retry_at is not None and ctx.store.clock() < engagement.retry_at:
        return 0
    try:
        await pull_engagement(ctx, campaign, engagement)
    except EngagementFileError as error:
        await _hold(ctx, campaign, engagement.failures, str(error))
        return 0
    return 1


async def _hold(ctx: TenantContext, campaign: CampaignRecord, failures: int,
                error: str) -> None:
    delay = min(RETRY_MAX, RETRY_FIRST * 2 ** failures)
    await ctx.store.engagement_failed(campaign.id, error, ctx.store.clock() + delay)
    message = (f"campaign {campaign.campaign_id} channel {campaign.channel_id}: {error}; "
               f"nothing is sent until it is read (next try in {delay:.0f} s)")
    ctx.log.warning("audience.file_failed", campaign=campaign.campaign_id,
                    channel=campaign.channel_id, error=error)
    # One problem row per campaign and error, counted again on each retry.
    await ctx.store.record_problem(ctx.name, "pull", message,
                                   key=f"engagement {campaign.id}: {error}")


def _notice(campaign: CampaignRecord, engagement: EngagementRecord) -> EngagementNotice:
    return EngagementNotice(campaign.campaign_id, campaign.channel_id, engagement.bucket,
                            engagement.customers_folder, engagement.metadata_path,
                            engagement.decryption_key, engagement.engagement_id)


async def _metadata(ctx: TenantContext, notice: EngagementNotice,
                    engagement: EngagementRecord) -> EngagementMetadata:
    if engagement.metadata_json is not None:
        return EngagementMetadata.model_validate_json(engagement.metadata_json)
    metadata = await asyncio.to_thread(bucket_for(ctx).read_metadata, notice)
    where = notice.url(notice.metadata_path)
    if (metadata.campaign_id, metadata.channel_id) != (notice.campaign_id, notice.channel_id):
        raise EngagementFileError(where, f"it describes campaign {metadata.campaign_id} "
                                  f"channel {metadata.channel_id}, the webhook campaign "
                                  f"{notice.campaign_id} channel {notice.channel_id}")
    await ctx.store.record_engagement_metadata(engagement.campaign_pk, metadata_json(metadata))
    return metadata


class RecordMaker:
    """Turns the Avro records of one campaign into audience entries: which field holds the
    customer ID, the address and each personalization value is configuration."""

    def __init__(self, channel: ChannelConfig, files: EngagementFilesConfig,
                 metadata: EngagementMetadata) -> None:
        self.channel_type = channel.type
        self.customer = files.customer_id_field
        self.address = files.field_for(channel.address_attribute)
        self.template_id, self.when = metadata.template_id, metadata.scheduled_time
        defaults = channel.personalization_defaults
        self.fields = [(name, files.field_for(name), defaults.get(name, ""))
                       for name in channel.personalization]

    @property
    def needed(self) -> tuple[str, ...]:
        return (self.customer, self.address)

    def entries(self, name: str, records: list[dict[str, Any]]) -> list[AudienceEntry]:
        made = []
        for record in records:
            customer = record.get(self.customer)
            if customer is None or customer == "":
                raise EngagementFileError(name, f"a record has no {self.customer}")
            address = record.get(self.address)
            made.append(AudienceEntry(
                str(customer), self.template_id, self.when,
                usable_address(None if address is None else str(address), self.channel_type),
                fields_json({field: _text(record.get(at)) or default
                             for field, at, default in self.fields})))
        return made


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class FileReader:
    """One customer file: downloaded to a temporary file (disk, not memory), then decoded a
    chunk at a time. Blocking: call it from a thread."""

    def __init__(self, bucket: EngagementBucket, notice: EngagementNotice, number: int,
                 maker: RecordMaker, chunk: int) -> None:
        self.name = notice.customer_file(number)
        self.url = notice.url(self.name)
        self.bucket, self.notice, self.maker, self.chunk = bucket, notice, maker, chunk
        self._file: IO[bytes] | None = None
        self._chunks: Iterator[list[dict[str, Any]]] = iter(())

    def open(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="optibridge-avro-")  # noqa: SIM115 (closed by close())
        self.bucket.download(self.notice, self.name, self._file)
        self._file.seek(0)
        self._chunks = avro_chunks(self.url, self._file, self.chunk, self.maker.needed)

    def next(self) -> list[AudienceEntry] | None:
        records = next(self._chunks, None)
        return None if records is None else self.maker.entries(self.url, records)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def pull_engagement(ctx: TenantContext, campaign: CampaignRecord,
                          engagement: EngagementRecord) -> None:
    """Read the metadata, then every customer file from the recorded one on, into the
    store; close the pull when the last one is stored."""
    notice = _notice(campaign, engagement)
    metadata = await _metadata(ctx, notice, engagement)
    channel = ctx.tenant.channel(campaign.channel_id)
    maker = RecordMaker(channel, ctx.tenant.files, metadata)
    skip = campaign.next_skip
    for number in range(engagement.next_file, metadata.number_of_files + 1):
        start = engagement.file_start if number == engagement.next_file else skip
        if number != engagement.next_file:
            await ctx.store.start_engagement_file(campaign.id, number, skip)
        stored = await _read_file(ctx, campaign, FileReader(
            bucket_for(ctx), notice, number, maker, ctx.tenant.page_size), skip, skip - start)
        if stored is None:
            return
        skip += stored
    if engagement.next_file <= metadata.number_of_files:
        await ctx.store.start_engagement_file(campaign.id, metadata.number_of_files + 1, skip)
    expected = metadata.number_of_customers
    if ctx.tenant.files.check_customer_count and expected is not None and skip != expected:
        raise EngagementFileError(
            notice.url(notice.metadata_path),
            f"the {metadata.number_of_files} customer files hold {skip} customers, "
            f"NumberOfCustomers says {expected}")
    await ctx.store.store_audience_page(campaign.id, channel.type, skip, [], True)
    await ctx.store.engagement_recovered(campaign.id)
    ctx.log.info("audience.pulled", campaign=campaign.campaign_id, channel=campaign.channel_id,
                 customers=skip, files=metadata.number_of_files, source="files")


async def _read_file(ctx: TenantContext, campaign: CampaignRecord, reader: FileReader,
                     skip: int, stored_already: int) -> int | None:
    """Store one file's customers from ``skip`` on, leaving out the first
    ``stored_already`` (stored before a restart); the customers it held, or None when the
    campaign stopped pulling meanwhile."""
    channel_type = ctx.tenant.channel(campaign.channel_id).type
    read = 0
    await asyncio.to_thread(reader.open)
    try:
        while (entries := await asyncio.to_thread(reader.next)) is not None:
            fresh = entries[max(0, stored_already - read):]
            read += len(entries)
            if not fresh:
                continue
            if not await ctx.store.store_audience_page(campaign.id, channel_type, skip,
                                                       fresh, False):
                ctx.log.info("audience.stopped", campaign=campaign.campaign_id, skip=skip)
                return None
            skip += len(fresh)
    finally:
        reader.close()
    ctx.log.info("audience.file_read", campaign=campaign.campaign_id, file=reader.url,
                 customers=read)
    return max(0, read - stored_already)
