#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (README "Training on GPUs"):
#   1. benchmarks/bench_gpu.py at the published recipes (images/s with and without AMP,
#      data-wait share, peak GPU memory, packing 1/2/4 trials on the GPU);
#   2. a 4-trial sweep of each objective on the generated real-layout trees, 4 trials packed on
#      the GPU (--gpus-per-trial 0.25), checking that each trial ran on cuda with Ray's GPU id.
# Weights are random (nothing can be downloaded there). Figures and logs go to $OUT.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_session.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/dmlsweep-gpu}
PY=${PY:-.venv/bin/python}
CPUS=${CPUS:-$(( $(nproc) / 4 ))}  # loader workers of each of the 4 packed trials: CPUS - 1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

"$PY" benchmarks/bench_gpu.py --data "$OUT/trees" --json "$OUT/bench_gpu.json" \
  2>&1 | tee "$OUT/bench_gpu.txt"

export TUNE_MAX_PENDING_TRIALS_PG=4  # the four packed trials start together
sweep() {  # space, then --set overrides
  local space=$1; shift
  "$PY" sweeps/launch.py --space "$space" --num-samples 4 --max-epochs 1 --scheduler fifo \
    --gpus-per-trial 0.25 --cpus-per-trial "$CPUS" --runs-dir "$OUT/runs" --name "gpu-$space" \
    --reproductions 0 --log-models 0 "$@" 2>&1 | tee "$OUT/sweep-$space.txt"
}
sweep ahsml_cub --set data_root="$OUT/trees/CUB_200_2011" --set 'weights=""'
sweep dsn_sketchy --set data_root="$OUT/trees/Sketchy" --set 'pretrained=""' --set 'kd_teacher=""'
sweep mathm_sketchy --set data_root="$OUT/trees/Sketchy" --set 'pretrained=""' --set iterations=30
sweep baseline

# where each trial ran, as its MLflow run recorded it
"$PY" - "$OUT/runs/mlflow.db" <<'EOF' | tee "$OUT/placement.txt"
import sys
from mlflow.tracking import MlflowClient

client = MlflowClient(f"sqlite:///{sys.argv[1]}")
for experiment in client.search_experiments():
    for run in client.search_runs([experiment.experiment_id]):
        tags = run.data.tags
        if tags.get("dmlsweep.role") == "trial":
            print(run.info.run_name, run.info.status, tags.get("dmlsweep.runtime.device"),
                  "gpu", tags.get("dmlsweep.runtime.gpu_ids"), tags.get("dmlsweep.runtime.amp"),
                  "img/s %.0f" % run.data.metrics.get("train/images_per_second", float("nan")),
                  "wait %.2f" % run.data.metrics.get("train/data_wait_share", float("nan")))
EOF
