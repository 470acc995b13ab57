"""The emulator's objects: bytes on disk, the SHA-256 of each object's CSEK, faults, and a
journal of downloads (so tests can count how often each file was read)."""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# GCS's own reasons and messages for customer-supplied key errors (Cloud Storage JSON API
# error reference): a read of a CSEK object without a key, with the wrong key, and so on.
KEY_MISSING = ("resourceIsEncryptedWithCustomerEncryptionKey",
               "The target object is encrypted by a customer-supplied encryption key.")
KEY_WRONG = ("customerEncryptionKeyIsIncorrect", "The provided encryption key is incorrect.")
KEY_UNEXPECTED = ("resourceNotEncryptedWithCustomerEncryptionKey",
                  "The target object is not encrypted by a customer-supplied encryption key.")
KEY_FORMAT = ("customerEncryptionKeyFormatIsInvalid",
              "Missing an encryption key, or it is not Base64 encoded, or it does not meet "
              "the required length of the encryption algorithm.")
KEY_SHA = ("customerEncryptionKeySha256IsInvalid",
           "Missing a SHA256 hash of the encryption key, or it is not base64 encoded, or it "
           "does not match the encryption key.")
KEY_ALGORITHM = ("customerEncryptionAlgorithmIsInvalid",
                 "Missing an encryption algorithm, or the provided algorithm is not \"AE256.\"")


class KeyRefused(Exception):
    """A request's customer-supplied key does not open the object (GCS answers 400)."""

    def __init__(self, reason: tuple[str, str]) -> None:
        super().__init__(reason[1])
        self.reason, self.message = reason


@dataclass
class StoredObject:
    path: Path
    size: int
    key_sha256: str | None  # base64 SHA-256 of the CSEK, as GCS keeps it
    md5: str
    crc32c: str | None
    generation: int


@dataclass(frozen=True)
class Download:
    """One media request the emulator answered."""

    bucket: str
    name: str
    status: int
    reason: str | None = None


def key_sha256(key_b64: str) -> str:
    return base64.b64encode(hashlib.sha256(base64.b64decode(key_b64)).digest()).decode()


def _crc32c(data: bytes) -> str | None:
    try:
        import google_crc32c
    except ImportError:  # the client then checks the MD5 alone
        return None
    value: int = google_crc32c.value(data)
    return base64.b64encode(value.to_bytes(4, "big")).decode()


@dataclass
class GcsEmulator:
    """Buckets of objects under ``root``; thread-safe (the app runs on uvicorn's thread)."""

    root: Path
    slow_seconds: float = 0.0  # spread over each download of a slowed object
    chunk_size: int = 64 * 1024
    _objects: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    _slow: set[tuple[str, str]] = field(default_factory=set)
    _downloads: list[Download] = field(default_factory=list)
    _generation: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, bucket: str, name: str, data: bytes, key: str | None = None) -> None:
        """Store an object, encrypted (as far as readers can tell) with the base64 ``key``."""
        path = self.root / bucket / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        with self._lock:
            self._generation += 1
            self._objects[(bucket, name)] = StoredObject(
                path, len(data), key_sha256(key) if key else None, md5, _crc32c(data),
                self._generation)

    # ---- faults ----------------------------------------------------------------------
    def remove(self, bucket: str, name: str) -> None:
        """The object is gone: readers get GCS's 404."""
        with self._lock:
            stored = self._objects.pop((bucket, name))
        stored.path.unlink(missing_ok=True)

    def truncate(self, bucket: str, name: str, keep: float = 0.5) -> None:
        """Cut the stored object to ``keep`` of its bytes (its checksums follow, as they
        would for an object written short)."""
        with self._lock:
            stored = self._objects[(bucket, name)]
            key_sha = stored.key_sha256
        data = stored.path.read_bytes()[: int(stored.size * keep)]
        stored.path.write_bytes(data)
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        with self._lock:
            self._generation += 1
            self._objects[(bucket, name)] = StoredObject(
                stored.path, len(data), key_sha, md5, _crc32c(data), self._generation)

    def slow_down(self, bucket: str, name: str, seconds: float) -> None:
        """Serve this object's downloads over ``seconds`` each."""
        with self._lock:
            self._slow.add((bucket, name))
            self.slow_seconds = seconds

    # ---- reading ---------------------------------------------------------------------
    def names(self, bucket: str) -> list[str]:
        with self._lock:
            return sorted(name for b, name in self._objects if b == bucket)

    def downloads(self) -> list[Download]:
        with self._lock:
            return list(self._downloads)

    def find(self, bucket: str, name: str) -> StoredObject | None:
        with self._lock:
            return self._objects.get((bucket, name))

    def open_media(self, bucket: str, name: str, headers: dict[str, str]
                   ) -> tuple[StoredObject | None, float]:
        """The object for a media read whose key headers open it (None: not found) and the
        seconds its download should take; KeyRefused when the key does not open it."""
        with self._lock:
            stored = self._objects.get((bucket, name))
            slow = self.slow_seconds if (bucket, name) in self._slow else 0.0
        try:
            if stored is not None:
                check_key(stored, headers)
        except KeyRefused as refused:
            self._record(Download(bucket, name, 400, refused.reason))
            raise
        self._record(Download(bucket, name, 200 if stored else 404))
        return stored, slow

    def _record(self, download: Download) -> None:
        with self._lock:
            self._downloads.append(download)

    def resource(self, bucket: str, name: str, stored: StoredObject,
                 with_hashes: bool) -> dict[str, Any]:
        """The JSON API's object resource."""
        body: dict[str, Any] = {
            "kind": "storage#object", "bucket": bucket, "name": name,
            "id": f"{bucket}/{name}/{stored.generation}", "size": str(stored.size),
            "generation": str(stored.generation), "metageneration": "1",
            "contentType": "application/octet-stream", "storageClass": "STANDARD"}
        if stored.key_sha256:
            body["customerEncryption"] = {"encryptionAlgorithm": "AES256",
                                          "keySha256": stored.key_sha256}
        if with_hashes:
            body["md5Hash"] = stored.md5
            if stored.crc32c:
                body["crc32c"] = stored.crc32c
        return body


def check_key(stored: StoredObject, headers: dict[str, str]) -> None:
    """Refuse a read whose customer-supplied key headers do not open ``stored``."""
    key = headers.get("x-goog-encryption-key")
    if key is None:
        if stored.key_sha256 is not None:
            raise KeyRefused(KEY_MISSING)
        return
    if stored.key_sha256 is None:
        raise KeyRefused(KEY_UNEXPECTED)
    if headers.get("x-goog-encryption-algorithm") != "AES256":
        raise KeyRefused(KEY_ALGORITHM)
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raise KeyRefused(KEY_FORMAT) from None
    if len(raw) != 32:
        raise KeyRefused(KEY_FORMAT)
    given_sha = base64.b64encode(hashlib.sha256(raw).digest()).decode()
    if headers.get("x-goog-encryption-key-sha256") != given_sha:
        raise KeyRefused(KEY_SHA)
    if given_sha != stored.key_sha256:
        raise KeyRefused(KEY_WRONG)
