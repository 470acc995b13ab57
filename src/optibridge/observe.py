"""A hook for watching outbound API calls, so the clients need not know about metrics.

The Optimove and platform clients report each HTTP attempt here: which API, which call
(a name of bounded cardinality, never an ID), the status (the HTTP code, or ``"error"`` when
no answer came) and whether the attempt was a retry. Observers must be quick and must not
raise; one that does is ignored for that call.
"""

from __future__ import annotations

import contextlib
import re
from typing import Protocol


class CallObserver(Protocol):
    def __call__(self, api: str, call: str, status: str, retried: bool) -> None: ...


_observers: list[CallObserver] = []
_IDS = re.compile(r"/\d+(?=/|$)")


def add_observer(observer: CallObserver) -> None:
    _observers.append(observer)


def remove_observer(observer: CallObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)


def path_template(path: str) -> str:
    """``/campaign/17/payload`` -> ``/campaign/{id}/payload``: a label that stays small."""
    return _IDS.sub("/{id}", path.split("?", 1)[0])


def api_call(api: str, call: str, status: int | str, retried: bool) -> None:
    """Tell every observer about one HTTP attempt."""
    for observer in list(_observers):
        with contextlib.suppress(Exception):  # watching must never break a call
            observer(api, call, str(status), retried)
