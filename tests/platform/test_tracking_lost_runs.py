"""A child run left RUNNING by a driver that died before Tune saved its trial ends FAILED and
marked lost; child runs of trials Tune knows, and runs already ended, are left as they are."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from support import local_tracking


def test_only_unknown_running_child_runs_are_failed_as_lost(tmp_path: Path) -> None:
    sweep = local_tracking(tmp_path, name="lost-runs", max_epochs=2)
    parent = sweep.parent_run_id
    client = MlflowClient(sweep.tracking_uri)

    def child(trial_id: str, status: str | None) -> str:
        tags = {MLFLOW_PARENT_RUN_ID: parent, "dmlsweep.trial_id": trial_id}
        run_id = client.create_run(sweep.experiment_id, tags=tags).info.run_id
        if status:
            client.set_terminated(run_id, status)
        return run_id

    ghost = child("ghost", None)  # created by the dead driver, never saved by Tune
    ended = child("old", "KILLED")  # unknown to Tune too, but it ended
    alive = child("alive", None)  # a trial Tune knows (the sweep ends it, not this rule)
    outsider = client.create_run(sweep.experiment_id).info.run_id  # not this sweep's child
    sweep.finish([SimpleNamespace(trial_id="alive", status="RUNNING", last_result={}, config={})])

    assert client.get_run(ghost).info.status == "FAILED"
    assert client.get_run(ghost).data.tags["dmlsweep.lost"] == "the sweep's driver died"
    assert client.get_run(ended).info.status == "KILLED"
    assert "dmlsweep.lost" not in client.get_run(ended).data.tags
    assert client.get_run(alive).info.status == "RUNNING"
    assert client.get_run(outsider).info.status == "RUNNING"
    assert client.get_run(parent).info.status == "FINISHED"
