"""Every name dmlsweep writes to MLflow: run tags, param prefixes, metric prefixes.

The writers (tracking, the sweep, reproductions, compare) and the readers (compare, evaluate,
resume) use these names, never a string of their own, so a renamed tag cannot leave a reader
looking for the old one.

A sweep is one parent run (``ROLE`` = ``sweep``) with one child run per trial (``trial``) and
per reproduction (``reproduction``); a comparison is a run of its own (``comparison``).
"""

from __future__ import annotations

# --- tags
ROLE = "dmlsweep.role"  # sweep | trial | reproduction | comparison
SPACE = "dmlsweep.space"  # the space's name
OBJECTIVE = "dmlsweep.objective"
PLAN = "dmlsweep.plan"  # the sweep's plan as JSON (dmlsweep.sweep.plan), read by --resume
TRIAL_ID = "dmlsweep.trial_id"  # a trial run's Ray Tune trial id
STATE = "dmlsweep.state"  # how a run ended: COMPLETE, PRUNED, FAIL, or INTERRUPTED
ERROR = "dmlsweep.error"  # a failed trial's error (also its Optuna user attribute)
LOST = "dmlsweep.lost"  # why a run was ended by the platform (its driver died)
RESUMED = "dmlsweep.resumed"  # when the sweep was last resumed
TRIALS = "dmlsweep.trials"  # the sweep's number of trials
BEST_TRIAL = "dmlsweep.best_trial"
BEST_RUN_ID = "dmlsweep.best_run_id"
MODEL_LOGGED = "dmlsweep.model_logged"  # a trial run whose model is logged (never twice)
CONFIG = "dmlsweep.config"  # a trial's current configuration (changed by PBT)
CONFIG_CHANGES = "dmlsweep.config_changes"
SEED = "dmlsweep.seed"  # a reproduction's seed
RANK = "dmlsweep.rank"  # a reproduced configuration's rank in its sweep
REPRODUCTIONS = "dmlsweep.reproductions"
COMPARED = "dmlsweep.compared"
RUNTIME_PREFIX = "dmlsweep.runtime."  # where a trial computed (dmlsweep.tracking.runtime_tags)
GIT_COMMIT = "git.commit"
NODE_ID = "ray.node_id"
OPTUNA_STUDY = "optuna.study_name"

# roles
SWEEP_ROLE, TRIAL_ROLE, REPRODUCTION_ROLE, COMPARISON_ROLE = (
    "sweep",
    "trial",
    "reproduction",
    "comparison",
)

# --- params of the parent run
SETTING = "setting/"  # setting/<name>: a fixed setting of every trial
SWEEP = "sweep/"  # sweep/<name>: how the sweep searched (objective, budget, strategy...)
SWEEP_METRIC = "sweep/metric"  # the metric's name
SWEEP_MODE = "sweep/mode"  # max | min
BEST = "best/"  # best/<name>: the best trial's configuration (also a metric: its value)
OPTUNA = "optuna/"  # optuna/study_name, optuna/storage (masked)

# --- metric prefixes
TRIALS_METRIC = "trials/"  # trials/<tune status>: how many trials ended so
CONFIG_METRIC = "config/"  # config/<name>: a hyperparameter PBT moved, per step
REPRO_METRIC = "repro/"  # repro/<metric>/<mean|std|ci95_low|ci95_high>
