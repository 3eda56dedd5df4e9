"""How fast each objective trains on a GPU, whether the input pipeline keeps up, and what
packing trials on one GPU gains.

1. **Loader alone**: the training input pipeline of CUB-200-2011 (AHSML's: decode, resize,
   weak + strong view, in loader workers; or with ``augment_on: device`` decode and resize
   only) and of Sketchy-Extended (DSN's: decode, resize, the clean image + two views; MATHM's:
   one flipped image) on generated real-layout trees of JPEG files
   (:mod:`trainables.dml.data.layout_trees`), in source images per second and per CPU core
   (workers, or the main process with 0 workers).
2. **Training**: each objective at its published recipe (backbone, image size, batch
   composition) runs ``train`` for ``--epochs`` epochs in a fresh process, without Ray (the
   reporting seam captures its reports); the last epoch's ``train/images_per_second`` (images
   through a forward and backward pass: views count) and ``train/data_wait_share`` (the share
   of the epoch spent waiting for the next batch), and the peak GPU memory. AMP on and off.
3. **Packing**: ``k`` = 1, 2, 4 processes train the same recipe on one GPU at once (as
   ``--gpus-per-trial 1/k`` does), CPU cores shared out between them; the total images/s.

Recipes (shared/methods.md): AHSML on CUB, ResNet-50 at 224 px, batch 128 = 16 classes x 8,
two views; DSN on Sketchy, CSE-ResNet-50 at 224 px, 96 images a step, sketch:photo 1:2, clean +
two views; MATHM on Sketchy, CSE-ResNet-50 at 224 px, PK batches of 15 classes x (4 sketches +
4 photos), AMP; baseline: its digits default (a small CNN; no published recipe). Weights are
random (none can be downloaded here): the speed is the same.

Without CUDA (or with ``--tiny``) everything runs tiny on the CPU (64-px trees, 32-px images,
small batches), as the test does, so the benchmark cannot rot; its figures say nothing about a
GPU.

Usage: ``.venv/bin/python benchmarks/bench_gpu.py [--tiny] [--json out.json]
[--objectives ahsml dsn mathm baseline] [--packing 1,2,4] [--data DIR]``
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables.dml.data.layout_trees import write_cub, write_sketchy  # noqa: E402

OBJECTIVES = ("ahsml", "dsn", "mathm", "baseline")
MODULES = {
    "ahsml": "trainables.ahsml.objective",
    "dsn": "trainables.dsn.objective",
    "mathm": "trainables.mathm.objective",
    "baseline": "trainables.baseline",
}


def recipes(cub: Path, sketchy: Path, *, tiny: bool) -> dict[str, dict[str, Any]]:
    """The config of each objective: its published recipe, or the tiny CPU version of it."""
    size = 32 if tiny else 224
    common = {"max_epochs": 1, "seed": 0}
    sbir = {"dataset": "sketchy", "data_root": str(sketchy), "image_size": size,
            "backbone": "cse_resnet50", "val_max_per_class": 2}  # fmt: skip
    return {
        "ahsml": {
            **common, "dataset": "cub200", "data_root": str(cub), "noise": "none",
            "noise_rate": 0.0, "backbone": "resnet50", "image_size": size,
            "batch_size": 16 if tiny else 128, "samples_per_class": 2 if tiny else 8,
            "embedding_size": 32 if tiny else 512,
        },
        "dsn": {**common, **sbir, "batch_size": 24 if tiny else 96, "photos_per_sketch": 2},
        "mathm": {
            **common, **sbir, "embedding_size": 32 if tiny else 512,
            "classes_per_batch": 4 if tiny else 15, "per_modality": 2 if tiny else 4,
            "iterations": 4 if tiny else 30,
        },
        "baseline": dict(common),
    }  # fmt: skip


# ------------------------------------------------------------------------------ the loader


def _row(tree: str, pipeline: str, batches: Any, *, workers: int, limit: int) -> dict:
    """Source images per second over the batches after the first (the workers' start-up), and
    per core; a batch is ``(images, labels, ...)``."""
    iterator = iter(batches)
    next(iterator)
    images, tic = 0, time.perf_counter()
    for n, batch in enumerate(iterator):
        images += batch[1].shape[0]
        if n + 1 >= limit:
            break
    rate = images / max(time.perf_counter() - tic, 1e-9)
    return {"tree": tree, "pipeline": pipeline, "workers": workers, "images_per_s": rate,
            "per_core": rate / max(workers, 1)}  # fmt: skip


def loader_rates(cub: Path, sketchy: Path, *, workers: list[int], size: int, limit: int) -> list:
    from trainables.dml.data.augment import AugmentedPair, strong_augment, weak_augment
    from trainables.dml_data import TrainBatches, load_dml_data
    from trainables.dsn.batches import modality_ratio_batches
    from trainables.runtime import epoch_generator
    from trainables.sbir.data import SBIRSettings, load_sbir_data

    rows = []
    for w in workers:
        data = load_dml_data(dataset="cub200", data_root=str(cub), seed=0, noise="none",
                             noise_rate=0.0, image_size=size)  # fmt: skip
        pair = AugmentedPair(weak=weak_augment(), strong=strong_augment(0.5))
        # AHSML's views in the workers; or (augment_on: device) drawn on the GPU, the workers
        # only decoding and resizing
        for views, pipeline in ((pair, "decode, resize, weak + strong view"),
                                (None, "decode, resize (views on the device)")):  # fmt: skip
            batches = TrainBatches(data, batch_size=32, m=4, seed=0, views=views, num_workers=w)
            rows.append(_row("cub200", pipeline, batches.epoch(1), workers=w, limit=limit))
        settings = SBIRSettings(dataset="sketchy", data_root=str(sketchy), image_size=size,
                                num_workers=w)  # fmt: skip
        part = load_sbir_data(settings, parts=("train",)).train
        assert part is not None
        index = modality_ratio_batches(part.modalities, sketches=16, photos=32, seed=0, epoch=1)
        for n_views, pipeline in ((2, "decode, resize, clean + 2 views"),  # DSN's
                                  (0, "decode, resize, flip (one image)")):  # MATHM's  # fmt: skip
            stream = part.batches(index, views=n_views, generator=epoch_generator(0, 1))
            rows.append(_row("sketchy", pipeline, stream, workers=w, limit=limit))
    return rows


# ---------------------------------------------------------------------------- training


def _train_once(job: tuple[str, dict[str, Any], int]) -> dict[str, Any]:
    """One training run in this (fresh) process: the last epoch's speed and the peak memory."""
    objective, config, threads = job
    torch.set_num_threads(threads)
    from trainables.reporting import capture_reports

    cuda = torch.cuda.is_available() and config.get("device", "auto") != "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    module = importlib.import_module(MODULES[objective])
    with capture_reports() as reports:
        module.train(config)
    last = reports[-1]
    return {
        "images_per_s": last["train/images_per_second"],
        "data_wait_share": last["train/data_wait_share"],
        "device": last["runtime/device"],
        "amp": last["runtime/amp"],
        "workers": int(last["runtime/num_workers"]),
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def run_pack(objective: str, config: dict[str, Any], k: int, *, tiny: bool) -> list[dict[str, Any]]:
    """``k`` trainings of ``config`` at once, each in its own process, the cores shared out."""
    cores = len(os.sched_getaffinity(0))
    share = max(1, cores // k)
    # tiny runs are a few steps: worker start-up would be most of their data wait
    config = {**config, "num_workers": max(0, share - 1) if not tiny else 0}
    # not multiprocessing.Pool: its daemonic processes cannot start loader workers
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=k, mp_context=spawn) as pool:
        return list(pool.map(_train_once, [(objective, config, share)] * k))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny CPU run (implied without CUDA)")
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES, default=list(OBJECTIVES))
    parser.add_argument("--packing", default="1,2,4", help="trials per GPU to measure")
    parser.add_argument("--pack-objectives", nargs="+", choices=OBJECTIVES, default=None,
                        help="objectives to pack (default: all; tiny: baseline)")  # fmt: skip
    parser.add_argument("--loader-only", action="store_true",
                        help="only the loader, at full size even without CUDA")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=None, help="epochs a run (2; tiny 1)")
    parser.add_argument("--data", type=Path, default=None, help="where to generate the trees")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    tiny = args.tiny or not (torch.cuda.is_available() or args.loader_only)
    epochs = args.epochs or (1 if tiny else 2)
    packing = [int(k) for k in args.packing.split(",")]
    cores = len(os.sched_getaffinity(0))
    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({cores} cores)" + (", tiny" if tiny else "")
    )
    print(f"bench_gpu on {device}; torch {torch.__version__}", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or Path(scratch)
        tic = time.perf_counter()
        size = 64 if tiny else 224
        cub = data / "CUB_200_2011"
        sketchy = data / "Sketchy"
        if not (cub / "images.txt").is_file():
            write_cub(cub, per_class=2 if tiny else 30, size=size)
        if not (sketchy / "zeroshot1").is_dir():
            write_sketchy(sketchy, per_class=2 if tiny else 20, size=size)
        print(f"trees ({size} px JPEG) ready in {time.perf_counter() - tic:.0f} s", flush=True)

        workers = [0, 1] if tiny else sorted({w for w in (1, 2, 4, 8, cores - 1) if w < cores})
        loader = loader_rates(cub, sketchy, workers=workers, size=32 if tiny else 224,
                              limit=4 if tiny else 40)  # fmt: skip
        print("\nloader alone (source images/s; per core = / max(workers, 1)):")
        for row in loader:
            print(f"  {row['tree']:<8} {row['pipeline']:<36} workers {row['workers']:>2}: "
                  f"{row['images_per_s']:8.0f} img/s, {row['per_core']:6.0f} per core")  # fmt: skip

        configs = recipes(cub, sketchy, tiny=tiny)
        training: list[dict[str, Any]] = []
        packs: list[dict[str, Any]] = []
        if args.loader_only:
            args.objectives = []
        print("\ntraining, one trial (images/s through forward + backward):")
        for objective in args.objectives:
            for amp in [True] if tiny else [True, False]:
                config = {**configs[objective], "max_epochs": epochs, "amp": amp}
                (result,) = run_pack(objective, config, 1, tiny=tiny)
                training.append({"objective": objective, **result})
                peak = result["peak_gpu_mib"]
                memory = f"{peak:7.0f} MiB" if peak is not None else "(no GPU)"
                print(f"  {objective:<9} {result['device']:<7} amp {result['amp']:<9} "
                      f"{result['images_per_s']:8.1f} img/s  data wait "
                      f"{result['data_wait_share']:5.1%}  workers {result['workers']:>2}  peak "
                      f"{memory}", flush=True)  # fmt: skip

        pack_objectives = args.pack_objectives or (["baseline"] if tiny else args.objectives)
        if args.loader_only:
            pack_objectives = []
        print("\npacking k trials on one device (total images/s; gain over k = 1):")
        for objective in pack_objectives:
            alone = None
            for k in packing:
                config = {**configs[objective], "max_epochs": epochs}
                results = run_pack(objective, config, k, tiny=tiny)
                total = sum(r["images_per_s"] for r in results)
                alone = alone or total
                packs.append({"objective": objective, "k": k, "total_images_per_s": total,
                              "gain": total / alone,
                              "max_data_wait_share": max(r["data_wait_share"] for r in results),
                              "peak_gpu_mib": [r["peak_gpu_mib"] for r in results]})  # fmt: skip
                print(
                    f"  {objective:<9} k={k}: {total:8.1f} img/s  x{total / alone:4.2f}  "
                    f"max data wait {packs[-1]['max_data_wait_share']:5.1%}",
                    flush=True,
                )

    figures = {"device": device, "tiny": tiny, "epochs": epochs, "loader": loader,
               "training": training, "packing": packs}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
