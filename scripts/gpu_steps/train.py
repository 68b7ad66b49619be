"""Step `train`: two Ray Train workers with NCCL, bf16, a checkpoint written and resumed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vda.platform.train.config import TrainConfig

from gpu_steps.bulk import local_ray
from gpu_steps.common import Outcome, _is_cuda, _workdir, first_line, note


def check_train(
    device: str = "cuda",
    size: str = "vits",
    height: int = 98,
    width: int = 126,
    steps: int = 4,
    workdir: str | None = None,
    trainer: str = "auto",
) -> Outcome:
    """Two workers train for `steps` steps, then the same run name again for one epoch more,
    which resumes from the first run's checkpoint.

    `trainer`: "driver" runs the training driver (`vda.platform.train.driver.train`);
    "scaled" runs the driver with a GPU fraction per worker (`gpus_per_worker`; on CPU,
    CPU workers: the same code); "auto" takes "scaled" with
    0.5 GPU each on a machine of exactly one GPU, falling back to one worker through the
    driver where NCCL refuses two ranks on one device, and the driver elsewhere.
    """
    if trainer not in ("auto", "driver", "scaled"):
        raise ValueError(f"trainer must be auto, driver or scaled, got {trainer!r}")
    with _workdir(workdir, "train") as root:
        return _train(device, size, height, width, steps, root, trainer)


def _train_config(
    root: Path,
    data: str,
    name: str,
    size: str,
    height: int,
    width: int,
    steps: int,
    workers: int,
    cuda: bool,
    epochs: int,
    gpu_share: float | None = None,
) -> TrainConfig:
    from vda.platform.core.config import build
    from vda.platform.train.config import TrainConfig

    return build(
        TrainConfig,
        {
            "name": name,
            "storage_path": str(root / "runs"),
            "model": {"size": size},
            "data": {
                "train": data,
                "clip": {
                    "clip_len": 4,
                    "batch_size": 2,
                    "windows_per_chunk": 6,
                    "augment": {"height": height, "width": width, "max_scale": 1.2},
                },
                "val_clips": 2,
            },
            "optim": {"lr": 1e-3, "warmup_steps": 1},
            "epochs": epochs,
            "steps_per_epoch": steps,
            "num_workers": workers,
            "use_gpu": cuda,
            "gpus_per_worker": gpu_share or 1.0,
            "cpus_per_worker": 1.0 if cuda else 0.5,
            "precision": "bf16",  # autocast on CUDA; the loop computes fp32 on CPU
            "mlflow": {"tracking_uri": f"sqlite:///{root}/mlflow.db", "experiment": "gpu-check"},
        },
    )


def _train(
    device: str, size: str, height: int, width: int, steps: int, root: Path, trainer: str
) -> Outcome:
    import numpy as np
    import torch
    from mlflow.tracking import MlflowClient

    from vda.platform.data.prepare import PrepareConfig, SyntheticOptions, prepare
    from vda.platform.train.driver import train

    cuda = _is_cuda(device)
    with local_ray(device, root):
        data = str(root / "data")
        prepare(
            PrepareConfig(
                dst=data,
                chunk_frames=8,
                synthetic=SyntheticOptions(sequences=4, frames=16, height=height, width=width),
            ),
            progress=print,
        )
        gpus = torch.cuda.device_count() if cuda else 0
        backend = "nccl" if cuda else "gloo"
        notes: list[str] = []
        share = 0.5 if cuda and gpus == 1 else None  # two workers on the one GPU
        scaled = trainer == "scaled" or (trainer == "auto" and share is not None)
        workers = 2

        def config(epochs: int) -> TrainConfig:
            name = f"{'scaled' if scaled else 'driver'}-{workers}w"
            return _train_config(
                root, data, name, size, height, width, steps, workers, cuda, epochs, share
            )

        first = None
        if scaled:
            if share:
                note("one GPU: two workers at 0.5 GPU each (NCCL may refuse 2 ranks on 1 GPU)")
            try:
                first = train(config(1))
            except Exception as error:
                if trainer == "scaled" or not share:
                    raise
                notes.append(
                    f"2 ranks on one GPU refused ({first_line(error)}): fell back to "
                    "1 worker through the driver, so no ranks' weights to compare"
                )
                note(notes[-1])
                scaled, share, workers = False, None, 1
        if first is None:
            first = train(config(1))
        note(f"first run: {steps} steps, metrics {_brief(first.metrics)}")
        second = train(config(2))
        note(f"resumed run: metrics {_brief(second.metrics)}")

    history = MlflowClient(first.tracking_uri).get_metric_history(first.mlflow_run_id, "train/loss")
    logged = sorted(m.step for m in history)
    losses = [m.value for m in history]
    spreads = [r.metrics.get("weight_spread", float("nan")) for r in (first, second)]
    failures = []
    if not (losses and np.isfinite(losses).all()):
        failures.append(f"losses not finite: {losses}")
    if workers > 1 and spreads != [0.0, 0.0]:
        failures.append(f"ranks' weights differ after the steps (spread {spreads})")
    if first.checkpoint_path is None or not Path(first.checkpoint_path).exists():
        failures.append(f"no checkpoint written ({first.checkpoint_path})")
    if second.mlflow_run_id != first.mlflow_run_id:
        failures.append("the rerun opened a new MLflow run instead of resuming")
    if second.metrics.get("step") != 2 * steps or second.metrics.get("epoch") != 2:
        failures.append(f"resumed run ended at {_brief(second.metrics)}, not step {2 * steps}")
    if logged != list(range(1, 2 * steps + 1)):  # a restart from scratch logs steps twice
        failures.append(f"steps logged {logged}: not resumed at step {steps + 1}")
    mode = "bf16 autocast" if cuda else "fp32 (no autocast on CPU)"
    layout = f"{workers} worker{'s' if workers > 1 else ''}" + (
        f" at {share:g} GPU each" if share else ""
    )
    layout += " (training driver)"
    figures = {
        "backend": backend,
        "workers": workers,
        "gpu_share": share,
        "gpus": gpus,
        "trainer": "scaled" if scaled else "driver",
        "precision": "bf16" if cuda else "fp32",
        "losses": losses,
        "weight_spread": spreads,
        "checkpoint": first.checkpoint_path,
        "resumed_checkpoint": second.checkpoint_path,
        "steps_logged": logged,
        "notes": notes,
    }
    summary = (
        f"{size}, {layout}, {backend}, {mode}: {steps} steps then {steps} more resumed from "
        f"the checkpoint; losses "
        + (f"{losses[0]:.3f} .. {losses[-1]:.3f}" if losses else "none logged")
        + f" (all finite: {bool(losses) and bool(np.isfinite(losses).all())}); weight spread "
        "over ranks "
        + ("/".join(f"{s:g}" for s in spreads) if workers > 1 else "not compared (1 worker)")
        + f"; steps logged 1..{logged[-1] if logged else 0} once each"
        + ("; " + "; ".join(notes) if notes else "")
        + ("; failed: " + ", ".join(failures) if failures else "")
    )
    return Outcome("FAIL" if failures else "PASS", summary, figures)


def _brief(metrics: dict[str, Any]) -> str:
    keys = ("epoch", "step", "train_loss", "weight_spread", "val_abs_rel")
    return ", ".join(
        f"{k} {metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), float | int)
    )


# -- step 5: ONNX ------------------------------------------------------------------------
