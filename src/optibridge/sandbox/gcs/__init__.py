"""A Google-Cloud-Storage-compatible endpoint on loopback for tests, demos and rehearsals.

The real ``google-cloud-storage`` client talks to it (``STORAGE_EMULATOR_HOST`` or the
client's ``api_endpoint`` option). It serves object metadata and media downloads of the JSON
API, enforces customer-supplied encryption keys (CSEK) the way GCS refuses a missing or wrong
key, and acts out faults: a missing object, a truncated object, a slow download.

    storage = GcsEmulator(root)                       # objects live under ``root`` on disk
    storage.put("bucket", "path/file.avro", data, key=b64_key)
    with serving(create_app(storage)) as running:     # optibridge.serving
        ...  # Client(client_options={"api_endpoint": running.url}, ...)
"""

from optibridge.sandbox.gcs.app import create_app
from optibridge.sandbox.gcs.storage import Download, GcsEmulator, KeyRefused

__all__ = ["Download", "GcsEmulator", "KeyRefused", "create_app"]
