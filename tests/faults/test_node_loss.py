"""A sweep on a two-node Ray cluster (a head and a worker, one CPU each, two ``ray start``
processes): its trials run on both nodes, and each child run names its node (``ray.node_id``).
Then the worker node is lost (its daemons SIGKILLed) mid-trial: that trial is rescheduled on
the head from its last checkpoint and the sweep completes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from faults.cluster import StartDriver
from faults.records import (
    assert_consistent,
    child_runs,
    read_records,
    read_results,
    sweep_parent,
    tune_trial_dirs,
)
from mlflow.tracking import MlflowClient
from ray_nodes import RayCluster, wait_until

pytestmark = pytest.mark.ray

NAME = "two-node"
NUM_SAMPLES = 2  # one per node at once: each node has one CPU
# Long enough that the trial that started first is still running once the later one's run has
# its node tag (the second trial starts seconds after the first).
MAX_EPOCHS = 8
SECONDS_PER_EPOCH = 1.0


def test_trials_run_on_both_nodes_and_survive_the_loss_of_one(
    two_node_cluster: RayCluster, drivers: StartDriver, runs_dir: Path
) -> None:
    cluster = two_node_cluster
    driver = drivers(
        *f"--space quadratic --name {NAME} --num-samples {NUM_SAMPLES} --max-epochs {MAX_EPOCHS}"
        f" --scheduler fifo --set seconds_per_epoch={SECONDS_PER_EPOCH} --log-models 0".split(),
        *("--address", cluster.address, "--runs-dir", str(runs_dir)),
    )
    wait_until(
        lambda: "parent run" in driver.output(),
        timeout=120,
        what="the sweep's parent run",
        driver=driver,
    )
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    parent = sweep_parent(client, NAME)

    def nodes_tracked() -> set[str]:
        tags = {c.data.tags.get("ray.node_id") for c in child_runs(client, parent)}
        return {t for t in tags if t} if len(tags - {None}) == 2 else set()

    # Issue 7: one trial per node at once (each node has one CPU), each run naming its node.
    node_ids = wait_until(
        nodes_tracked,
        timeout=180,
        interval=0.1,
        driver=driver,
        what="child runs on two distinct nodes",
    )

    def trial_on_worker() -> tuple[str, str, int] | None:
        """(trial id, its node id, epochs) of a trial on the worker node that has checkpointed
        and has epochs to go (two, lest it finish before the kill lands)."""
        workers = set(cluster.worker.worker_pids())
        for trial_id, directory in tune_trial_dirs(runs_dir, NAME).items():
            rows = read_results(directory / "result.json")
            if rows and rows[-1]["pid"] in workers and 1 <= len(rows) <= MAX_EPOCHS - 2:
                return trial_id, rows[-1]["node_id"], len(rows)
        return None

    victim, worker_node, epochs_done = wait_until(
        trial_on_worker,
        timeout=60,
        interval=0.1,
        driver=driver,
        what="a trial mid-way on the worker node",
    )
    (head_node,) = node_ids - {worker_node}
    cluster.worker.kill()
    assert driver.wait(timeout=300) == 0, driver.output()[-4000:]

    records = read_records(runs_dir=runs_dir, name=NAME)
    states = assert_consistent(records, num_samples=NUM_SAMPLES, max_epochs=MAX_EPOCHS)
    assert set(states.values()) == {"COMPLETE"}, states
    ran_on = {r["node_id"] for t in records.tune.values() for r in t.results}
    assert ran_on == {head_node, worker_node}

    trial = records.tune[victim]
    assert trial.num_failures == 1
    nodes = [r["node_id"] for r in trial.results]
    lost_at = nodes.index(head_node)  # the first epoch after the loss
    assert lost_at > epochs_done - 1 and set(nodes[:lost_at]) == {worker_node}, nodes
    assert set(nodes[lost_at:]) == {head_node}, nodes
    # Rescheduled from its checkpoint: the epoch counter goes on, epoch 1 ran once.
    assert trial.results[lost_at]["iterations_since_restore"] == 1
    assert trial.results[lost_at]["training_iteration"] > epochs_done
    run = records.run_of(victim)
    assert run.data.tags["ray.node_id"] == head_node  # where it ran last
    steps = Counter(step for step, _ in records.history(run.info.run_id, "train/epoch"))
    assert sorted(steps) == list(range(1, MAX_EPOCHS + 1)) and steps[1] == 1, steps
