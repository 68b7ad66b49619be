"""The per-worker training loop that Ray Train runs on every rank.

Reads top to bottom as one class: build the model (encoder frozen), restore
from the latest checkpoint if there is one, then for each epoch train on this
worker's shard, validate, report metrics from every rank and a checkpoint
from rank 0. Checkpoints carry epoch *and* step, so a restart after a worker
dies continues the step counter instead of starting over.

Each concern around the loop has its own home: checkpoint reading and the
resume rules in `checkpoints.py`, MLflow batching in `core.tracking`, the
fault-injection hook in `faults.py`, the Tune bookkeeping in `placement.py`.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from vda.model import VideoDepthAnything, load_weights
from vda.model.losses import total_loss
from vda.model.metrics import evaluate_sequence
from vda.model.precision import autocast_dtype

from ..core.config import build
from ..data.pipeline import to_model_inputs
from ..weights import CHECKPOINT_FILE, read_weights
from .checkpoints import NOT_VALIDATED, resume_state
from .config import TrainConfig
from .faults import maybe_fail
from .placement import record_placement_group
from .sources import SourceMix, dataset_key


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up to 1, then cosine down to `min_ratio` at `total` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _all_min(value: int, device: torch.device) -> int:
    if not dist.is_available() or not dist.is_initialized():
        return value
    tensor = torch.tensor([value], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())


def _all_sum(values: list[float], device: torch.device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor.tolist()


class HeadTrainer:
    def __init__(
        self, config: TrainConfig, mlflow_run_id: str | None = None, tracking_uri: str | None = None
    ) -> None:
        import ray.train
        import ray.train.torch

        self.config = config
        self.context = ray.train.get_context()
        self.rank = self.context.get_world_rank()
        self.device = ray.train.torch.get_device()
        torch.manual_seed(config.seed)
        model = VideoDepthAnything(config.model)
        if config.init:  # official, Depth Anything V2, timm or vda weights; a path or s3://
            load_weights(model, read_weights(config.init, config.s3).stream())
        model.set_trainable(config.trainable)
        self.model = ray.train.torch.prepare_model(model)
        self.raw_model: VideoDepthAnything = getattr(self.model, "module", self.model)
        params = list(self.raw_model.trainable_parameters())
        self.optimizer = torch.optim.AdamW(
            params, lr=config.optim.lr, weight_decay=config.optim.weight_decay
        )
        total = config.epochs * config.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: warmup_cosine(
                step, config.optim.warmup_steps, total, config.optim.min_lr_ratio
            ),
        )
        self.autocast = autocast_dtype(self.config.precision, self.device, use="training")
        self.scaler = torch.amp.GradScaler(enabled=self.autocast == torch.float16)
        self.epoch = 0
        self.step = 0  # global optimizer steps
        self.epoch_step = 0  # steps done in the current epoch (a restart continues from here)
        self.best_abs_rel = NOT_VALIDATED
        self.last_abs_rel = NOT_VALIDATED
        self.mlflow_run_id = mlflow_run_id  # rank 0 logs into the run the driver created
        self._tracking_uri = tracking_uri
        self._mlflow = None

    # -- checkpoints ----------------------------------------------------------
    def state(self) -> dict[str, Any]:
        from ..core.config import to_dict

        model_state = self.raw_model.state_dict()
        return {
            "model": model_state,
            "head": {k: v for k, v in model_state.items() if not k.startswith("pretrained.")},
            "model_config": to_dict(self.config.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "epoch_step": self.epoch_step,
            "best_abs_rel": self.best_abs_rel,
            "last_abs_rel": self.last_abs_rel,
            "config": to_dict(self.config),
            "mlflow_run_id": self.mlflow_run_id,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.epoch_step = state["epoch"], state["step"], state["epoch_step"]
        self.best_abs_rel = state["best_abs_rel"]
        self.last_abs_rel = state["last_abs_rel"]

    def report(self, metrics: dict[str, float], with_checkpoint: bool) -> None:
        import ray.train

        metrics = {**metrics, "epoch": self.epoch, "step": self.step}
        if with_checkpoint:
            self._log({}, flush=True)  # what a checkpoint covers is logged with it
        if not with_checkpoint or self.rank != 0:
            ray.train.report(metrics, checkpoint=None)
            return
        with tempfile.TemporaryDirectory() as folder:
            torch.save(self.state(), Path(folder) / CHECKPOINT_FILE)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))

    # -- MLflow (rank 0) --------------------------------------------------------
    def _log(self, metrics: dict[str, float], flush: bool = False) -> None:
        """Rank 0 logs, batched on a background thread (`core.tracking.MetricLogger`)."""
        if self.rank != 0 or self.mlflow_run_id is None:
            return
        if self._mlflow is None:
            from mlflow.tracking import MlflowClient

            from ..core.tracking import MetricLogger

            client = MlflowClient(self._tracking_uri)
            self._mlflow = MetricLogger(client, self.mlflow_run_id, self.config.log_flush_steps)
        if metrics:
            self._mlflow.log(metrics, self.step)
        if flush:
            self._mlflow.flush(wait=True)

    # -- the loop -------------------------------------------------------------
    def _batches(self, shard, passes: int = 0):
        clip = self.config.data.clip
        shuffle = clip.shuffle_buffer_clips
        return iter(
            shard.iter_torch_batches(
                batch_size=clip.batch_size,
                drop_last=True,
                local_shuffle_buffer_size=shuffle or None,
                local_shuffle_seed=(self.config.seed * 100_003 + self.epoch * 1_000 + passes)
                if shuffle
                else None,
            )
        )

    def train_epoch(self, shards: list) -> dict[str, float]:
        """One epoch over this worker's shard of the training set, or of several mixed by
        weight (`sources.SourceMix`)."""
        config = self.config
        self.model.train()
        sources = config.data.sources
        if sources:
            counts = [0] * len(shards)

            def new_pass(index: int):
                counts[index] += 1
                return self._batches(shards[index], counts[index])

            mix = SourceMix(
                [s.name for s in sources], [s.weight for s in sources], new_pass, seed=config.seed
            )
        else:
            only = self._batches(shards[0])
        totals = {"loss": 0.0, "ssi": 0.0, "tgm": 0.0}
        wait_total = compute_total = 0.0
        steps = 0
        while self.epoch_step < config.steps_per_epoch:
            maybe_fail(self.config, self.rank, self.step)
            started = time.perf_counter()
            source, batch = mix.next(self.step) if sources else ("", next(only, None))
            # every rank stops as soon as one has no batch left: DDP needs the same step count
            if _all_min(0 if batch is None else 1, self.device) == 0:
                break
            inputs = to_model_inputs(batch, self.device)
            waited = time.perf_counter() - started
            with torch.autocast(
                self.device.type, dtype=self.autocast, enabled=self.autocast is not None
            ):
                prediction = self.model(inputs["frames"], inputs["frame_index"])
            terms = total_loss(prediction, inputs["target"], inputs["mask"], config.loss)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(terms["loss"]).backward()
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in self.raw_model.parameters() if p.requires_grad], config.optim.grad_clip
            )
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            computed = time.perf_counter() - started - waited
            self.step += 1
            self.epoch_step += 1
            steps += 1
            wait_total += waited
            compute_total += computed
            for key in totals:
                totals[key] += float(terms[key].detach())
            if config.log_every_steps and self.step % config.log_every_steps == 0:
                logged = {
                    "train/loss": float(terms["loss"].detach()),
                    "train/ssi": float(terms["ssi"].detach()),
                    "train/tgm": float(terms["tgm"].detach()),
                    "train/lr": self.scheduler.get_last_lr()[0],
                    "train/grad_norm": float(grad_norm),
                    "time/data_wait_s": waited,
                    "time/compute_s": computed,
                }
                if source:  # each source's terms under its own name
                    for key in ("loss", "ssi", "tgm"):
                        logged[f"train/{source}/{key}"] = float(terms[key].detach())
                self._log(logged)
            if config.checkpoint_every_steps and self.step % config.checkpoint_every_steps == 0:
                # a mid-epoch checkpoint is for resuming, never "best": the weights changed
                # since the last validation, so it carries no score of its own
                self.report(
                    {
                        "train_loss": float(terms["loss"].detach()),
                        "val_abs_rel": NOT_VALIDATED,
                        "validated": 0.0,
                    },
                    with_checkpoint=True,
                )
        steps = max(steps, 1)
        summed = _all_sum([totals[k] for k in totals] + [steps], self.device)
        world_steps = summed[-1]
        metrics = {f"train_{k}": v / world_steps for k, v in zip(totals, summed)}
        metrics["data_wait_frac"] = wait_total / max(wait_total + compute_total, 1e-9)
        return metrics

    @torch.no_grad()
    def validate(self, shard, max_depth: float) -> dict[str, float]:
        """Sequence-level metrics per clip (one alignment per clip), averaged over all ranks."""
        self.model.eval()
        sums = dict.fromkeys(("abs_rel", "delta1", "rmse", "tae", "posed", "clips"), 0.0)
        clips = 0
        for batch in shard.iter_torch_batches(batch_size=1):
            if clips >= self.config.data.val_clips:
                break
            inputs = to_model_inputs(batch, self.device)
            prediction = (
                self.raw_model(inputs["frames"], inputs["frame_index"]).float().cpu().numpy()
            )
            depth = inputs["depth"].cpu().numpy()
            mask = inputs["mask"].cpu().numpy()
            has_pose = bool(inputs["has_pose"][0])
            if not mask[0].any():
                continue
            result = evaluate_sequence(
                prediction[0],
                depth[0],
                max_depth,
                masks=mask[0],
                intrinsics=inputs["intrinsics"][0].cpu().numpy().astype(np.float64)
                if has_pose
                else None,
                c2w=list(inputs["c2w"][0].cpu().numpy().astype(np.float64)) if has_pose else None,
            )
            sums["abs_rel"] += result.abs_rel
            sums["delta1"] += result.delta1
            sums["rmse"] += result.rmse
            if result.tae is not None and np.isfinite(result.tae):  # clips with poses only
                sums["tae"] += result.tae
                sums["posed"] += 1
            sums["clips"] += 1
            clips += 1
        total = dict(zip(sums, _all_sum(list(sums.values()), self.device), strict=True))
        count = max(total["clips"], 1.0)
        metrics = {
            "val_abs_rel": total["abs_rel"] / count,
            "val_delta1": total["delta1"] / count,
            "val_rmse": total["rmse"] / count,
            "val_clips": total["clips"],
        }
        if total["posed"]:
            metrics["val_tae"] = total["tae"] / total["posed"]
        return metrics

    def worker_nodes(self) -> int:
        """How many distinct Ray nodes the workers run on (a placement check)."""
        import ray

        node = ray.get_runtime_context().get_node_id()
        if not (dist.is_available() and dist.is_initialized()):
            return 1
        nodes: list[str | None] = [None] * dist.get_world_size()
        dist.all_gather_object(nodes, node)
        return len(set(nodes))

    def fingerprint_spread(self) -> float:
        """Max minus min over ranks of a weight checksum: 0 when every rank holds the same weights."""
        value = sum(
            p.detach().double().sum() for p in self.raw_model.parameters() if p.requires_grad
        )
        high = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        low = high.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(high, op=dist.ReduceOp.MAX)
            dist.all_reduce(low, op=dist.ReduceOp.MIN)
        return float(high - low)

    def run(self, max_depth: float) -> None:
        import ray.train

        config = self.config
        record_placement_group(config.storage_path, config.name, self.rank, config.s3)
        found = resume_state(
            ray.train.get_checkpoint(), config.storage_path, config.name, config.s3
        )
        if found is not None:
            self.restore(found[1])
        sources = self.config.data.sources
        train_shards = (
            [ray.train.get_dataset_shard(dataset_key(i)) for i in range(len(sources))]
            if sources
            else [ray.train.get_dataset_shard("train")]
        )
        val_shard = ray.train.get_dataset_shard("val")
        while self.epoch < self.config.epochs:
            train_metrics = self.train_epoch(train_shards)
            val_metrics = self.validate(val_shard, max_depth)
            self.epoch += 1
            self.epoch_step = 0
            self.last_abs_rel = val_metrics["val_abs_rel"]
            self.best_abs_rel = min(self.best_abs_rel, self.last_abs_rel)
            metrics = {
                **train_metrics,
                **val_metrics,
                "weight_spread": self.fingerprint_spread(),
                "worker_nodes": self.worker_nodes(),
                "validated": 1.0,
            }
            self._log({f"epoch/{k}": v for k, v in metrics.items()})
            self.report(metrics, with_checkpoint=True)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: rebuild the typed config and run the loop."""
    config = build(TrainConfig, loop_config["config"])
    trainer = HeadTrainer(config, loop_config.get("mlflow_run_id"), loop_config.get("tracking_uri"))
    trainer.run(loop_config["max_depth"])
