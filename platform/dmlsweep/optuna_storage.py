"""The sweep's Optuna storage: the database's, pickled without its password, read from memory.

``MaskedRDBStorage``: Ray Tune pickles the searcher, and with it the study's storage, into the
experiment state it writes next to the results (possibly a shared bucket). The pickle keeps the
URL with its password masked; unpickling (a resumed driver) takes the real URL from this
process's registry, filled when the driver opens the storage from ``--storage`` or the
environment.

``SoleWriterStorage`` wraps it for the sweep's driver: writes go to the database, reads come
from an in-memory copy of the study.
"""

from __future__ import annotations

import threading
from collections.abc import Container, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from optuna.study._frozen import FrozenStudy

from dmlsweep.errors import DmlsweepError
from dmlsweep.secrets import redact

# masked URL -> URL, for the storages this process opened
_URLS: dict[str, str] = {}


class MaskedRDBStorage(optuna.storages.RDBStorage):
    """``RDBStorage`` whose pickled state holds ``redact(url)`` instead of the URL."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        _URLS[redact(url)] = url
        super().__init__(url, **kwargs)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["url"] = redact(self.url)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        masked = state["url"]
        url = _URLS.get(masked)
        if url is None and len(set(_URLS.values())) == 1:
            # the one storage of this (resumed) driver: the runs dir was moved or copied since
            # the state was saved, or the database moved with --storage
            url = next(iter(_URLS.values()))
        if url is None:
            raise DmlsweepError(
                f"the Optuna storage {masked} was not opened in this process: pass it again "
                "with --storage or DMLSWEEP_OPTUNA_STORAGE"
            )
        super().__setstate__({**state, "url": url})


class SoleWriterStorage(optuna.storages.BaseStorage):
    """The storage of a study that this process alone writes (a sweep's driver): every write
    goes to the database first, durable as before, then to an in-memory copy of the study that
    serves every read.

    Optuna's own cache re-reads every unfinished trial from the database on each read, and its
    samplers read the whole study at every ``ask``: on SQLite that was ~2 s of the driver's
    event loop per 50 trials, time in which no trial got its next epoch. A write the database
    refuses (a finished trial, a changed distribution) raises and changes neither store.

    A study is copied from the database when first used here, so a resumed driver starts from
    what its predecessor wrote. Trials keep the database's ids; a datetime set by a state change
    is each store's own reading of the clock (they differ by microseconds). Studies this object
    never opened are read and written in the database directly.
    """

    def __init__(self, backend: optuna.storages.RDBStorage) -> None:
        self.backend = backend
        self._reset()

    def _reset(self) -> None:
        self._memory = optuna.storages.InMemoryStorage()
        self._studies: set[int] = set()  # mirrored study ids (the database's)
        self._trials: dict[int, int] = {}  # their trial ids -> study ids (the database's)
        self._distributions: dict[tuple[int, str], BaseDistribution] = {}  # (study, param)
        self._lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        return {"backend": self.backend}  # the copy is rebuilt from the database

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.backend = state["backend"]
        self._reset()

    @property
    def url(self) -> str:
        return str(getattr(self.backend, "url", ""))

    # -- the in-memory copy ---------------------------------------------------------------
    def _copy_study(self, study_id: int) -> None:
        """Copy ``study_id`` from the database into memory, unless it is there already."""
        with self._lock:
            if study_id in self._studies:
                return
            name = self.backend.get_study_name_from_id(study_id)
            self._create_study_copy(study_id, self.backend.get_study_directions(study_id), name)
            for key, value in self.backend.get_study_user_attrs(study_id).items():
                self._memory.set_study_user_attr(study_id, key, value)
            for key, value in self.backend.get_study_system_attrs(study_id).items():
                self._memory.set_study_system_attr(study_id, key, value)
            for trial in self.backend.get_all_trials(study_id, deepcopy=False):
                self._copy_trial(study_id, trial)

    def _create_study_copy(self, study_id: int, directions: Sequence[Any], name: str) -> None:
        # The copy takes the database's ids, so the trials it hands out carry them.
        self._memory._max_study_id = study_id - 1
        _check_same_id(self._memory.create_new_study(directions, study_name=name), study_id)
        self._studies.add(study_id)

    def _copy_trial(self, study_id: int, trial: FrozenTrial) -> None:
        self._memory._max_trial_id = trial._trial_id - 1
        copied = self._memory.create_new_trial(study_id, template_trial=trial)
        _check_same_id(copied, trial._trial_id)
        self._trials[trial._trial_id] = study_id
        for name, distribution in trial.distributions.items():
            self._distributions.setdefault((study_id, name), distribution)

    def _reader(self, *, study_id: int | None = None, trial_id: int | None = None) -> Any:
        if study_id is not None:
            self._copy_study(study_id)
            return self._memory
        return self._memory if trial_id in self._trials else self.backend

    # -- studies --------------------------------------------------------------------------
    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        with self._lock:
            study_id = self.backend.create_new_study(directions, study_name=study_name)
            name = self.backend.get_study_name_from_id(study_id)  # Optuna names unnamed ones
            self._create_study_copy(study_id, directions, name)
            return study_id

    def delete_study(self, study_id: int) -> None:
        with self._lock:
            self.backend.delete_study(study_id)
            if study_id in self._studies:
                for trial in self._memory.get_all_trials(study_id, deepcopy=False):
                    del self._trials[trial._trial_id]
                self._memory.delete_study(study_id)
                self._studies.discard(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        with self._lock:
            self.backend.set_study_user_attr(study_id, key, value)
            if study_id in self._studies:
                self._memory.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        with self._lock:
            self.backend.set_study_system_attr(study_id, key, value)
            if study_id in self._studies:
                self._memory.set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.backend.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._reader(study_id=study_id).get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._reader(study_id=study_id).get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._reader(study_id=study_id).get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._reader(study_id=study_id).get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self.backend.get_all_studies()

    # -- trials ---------------------------------------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        # As Optuna's own cache does, the database's record (its number, start time) comes back
        # from its creation instead of being read again.
        with self._lock:
            trial = self.backend._create_new_trial(study_id, template_trial=template_trial)
            self._copy_study(study_id)  # a study copied now holds the new trial already
            if trial._trial_id not in self._trials:
                self._copy_trial(study_id, trial)
            return trial._trial_id

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        with self._lock:
            study_id = self._trials.get(trial_id)
            if study_id is None:
                self.backend.set_trial_param(
                    trial_id, param_name, param_value_internal, distribution
                )
                return
            # The study's distribution of the param is known here: the database need not
            # look it up to check the new one against it (as with Optuna's own cache).
            previous = self._distributions.get((study_id, param_name))
            self.backend._set_trial_param(
                trial_id, param_name, param_value_internal, distribution, previous
            )
            self._memory.set_trial_param(trial_id, param_name, param_value_internal, distribution)
            self._distributions.setdefault((study_id, param_name), distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        reader = self._reader(study_id=study_id)
        return int(reader.get_trial_id_from_study_id_trial_number(study_id, trial_number))

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        with self._lock:
            changed = self.backend.set_trial_state_values(trial_id, state=state, values=values)
            if changed and trial_id in self._trials:
                self._memory.set_trial_state_values(trial_id, state=state, values=values)
            return changed

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._write("set_trial_intermediate_value", trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._write("set_trial_user_attr", trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._write("set_trial_system_attr", trial_id, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._reader(trial_id=trial_id).get_trial(trial_id)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        reader = self._reader(study_id=study_id)
        return list(reader.get_all_trials(study_id, deepcopy=deepcopy, states=states))

    def _write(self, method: str, trial_id: int, *args: Any) -> None:
        with self._lock:
            getattr(self.backend, method)(trial_id, *args)
            if trial_id in self._trials:
                getattr(self._memory, method)(trial_id, *args)


def _check_same_id(copied: int, database: int) -> None:
    if copied != database:  # Optuna's in-memory storage no longer numbers as it did
        raise RuntimeError(f"the in-memory copy gave id {copied} to the database's {database}")
