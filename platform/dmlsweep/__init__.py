"""dmlsweep: hyperparameter sweeps for deep metric learning on Ray Tune, Optuna and MLflow.

Heavy libraries (ray, torch, mlflow) are imported lazily by the modules that need them, so
``dmlsweep --help`` and space validation stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
