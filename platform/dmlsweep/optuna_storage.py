"""Optuna's RDB storage that pickles without its database password.

Ray Tune pickles the searcher, and with it the study's storage, into the experiment state it
writes next to the results (possibly a shared bucket). The pickle keeps the URL with its
password masked; unpickling (a resumed driver) takes the real URL from this process's
registry, filled when the driver opens the storage from ``--storage`` or the environment.
"""

from __future__ import annotations

from typing import Any

import optuna

from dmlsweep.errors import DmlsweepError
from dmlsweep.secrets import mask

# masked URL -> URL, for the storages this process opened
_URLS: dict[str, str] = {}


class MaskedRDBStorage(optuna.storages.RDBStorage):
    """``RDBStorage`` whose pickled state holds ``mask(url)`` instead of the URL."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        _URLS[mask(url)] = url
        super().__init__(url, **kwargs)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["url"] = mask(self.url)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        masked = state["url"]
        if masked not in _URLS:
            raise DmlsweepError(
                f"the Optuna storage {masked} was not opened in this process: pass it again "
                "with --storage or DMLSWEEP_OPTUNA_STORAGE"
            )
        super().__setstate__({**state, "url": _URLS[masked]})
