"""MLflow tracking: where runs go, and logging that never leaks secrets.

Default store: a SQLite file under the working directory (`mlruns.db`, with
artifacts in `mlruns/`); MLflow 3's file store is in maintenance mode and
refuses by default. Any tracking URI (a server for clusters) comes from the
job config or `MLFLOW_TRACKING_URI`. The experiment is created once by the
driver before any worker logs: concurrent creation on SQLite races.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECRET_PATTERN = re.compile(r"(secret|password|token|access_key|credential|api_key)", re.I)


@dataclass
class MlflowConfig:
    tracking_uri: str | None = None  # default: $MLFLOW_TRACKING_URI, else sqlite:///./mlruns.db
    experiment: str = "vda"
    artifact_location: str | None = None  # default: ./mlruns next to the SQLite file


def resolve_tracking_uri(config: MlflowConfig) -> str:
    uri = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path('mlruns.db').resolve()}"


def _artifact_location(config: MlflowConfig, tracking_uri: str) -> str | None:
    if config.artifact_location:
        return config.artifact_location
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///") :]).parent.joinpath("mlruns").resolve().as_uri()
    return None


def ensure_experiment(config: MlflowConfig) -> tuple[str, str]:
    """(tracking URI, experiment id), creating the experiment if needed (driver only)."""
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(config)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is not None:
        return uri, experiment.experiment_id
    return uri, client.create_experiment(
        config.experiment, artifact_location=_artifact_location(config, uri)
    )


def safe_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Flattened params as MLflow strings, with anything secret-looking dropped."""
    out = {}
    for key, value in params.items():
        if SECRET_PATTERN.search(key):
            continue
        text = str(value)
        out[key] = text if len(text) <= 6000 else text[:5997] + "..."
    return out


class TrackedRun:
    """One MLflow run of a job, opened by `tracked_run` and closed however the job ends.

    Used as a context manager: the run ends as `status` ("FINISHED" unless the
    job set "FAILED") when the block ends, "FAILED" when it raises and "KILLED"
    on Ctrl-C, so no run stays RUNNING after its job is gone.
    """

    def __init__(self, client, tracking_uri: str, experiment_id: str, run_id: str) -> None:
        self.client, self.tracking_uri = client, tracking_uri
        self.experiment_id, self.run_id = experiment_id, run_id
        self.status = "FINISHED"

    def log_params(self, params: Mapping[str, Any]) -> None:
        log_params(self.client, self.run_id, params)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        log_metrics(self.client, self.run_id, metrics, step)

    def log_texts(self, files: Mapping[str, str]) -> None:
        """Small text files (reports, configs) as artifacts at the run's root."""
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            for name, text in files.items():
                path = Path(folder, name)
                path.write_text(text)
                self.client.log_artifact(self.run_id, str(path))

    def log_file(self, path: str | Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        status = (
            self.status if kind is None else "KILLED" if kind is KeyboardInterrupt else "FAILED"
        )
        self.client.set_terminated(self.run_id, status=status)


def tracked_run(
    config: MlflowConfig,
    name: str,
    tags: Mapping[str, str] | None = None,
    resume_tag: str | None = None,
) -> TrackedRun:
    """The job's run: a new one, or with `resume_tag` the latest run whose tag holds `name`
    (reopened: a rerun of a named training or sweep logs on into the same run)."""
    from mlflow.tracking import MlflowClient

    tracking_uri, experiment_id = ensure_experiment(config)
    client = MlflowClient(tracking_uri)
    tags = {**(tags or {}), **({resume_tag: name} if resume_tag else {})}
    run = find_run(client, experiment_id, resume_tag, name) if resume_tag else None
    if run is None:
        run = client.create_run(experiment_id, run_name=name, tags=tags)
    elif run.info.status != "RUNNING":
        client.update_run(run.info.run_id, status="RUNNING")
    return TrackedRun(client, tracking_uri, experiment_id, run.info.run_id)


def find_run(client, experiment_id: str, tag: str, value: str):
    """The most recent run with tag == value, to resume logging into it."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{tag}` = '{value}'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0] if runs else None


def log_params(client, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in safe_params(params).items()]
    existing = client.get_run(run_id).data.params
    items = [p for p in items if p.key not in existing]  # params are write-once
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


def log_metrics(client, run_id: str, metrics: Mapping[str, float], step: int) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
    if items:
        client.log_batch(run_id, metrics=items)


class MetricLogger:
    """Metrics to MLflow in batches, sent on a thread of their own.

    A training step must never wait for a tracking server (a remote one can
    take a second per call, and every DDP rank waits for rank 0 at the next
    all-reduce). Metrics are buffered and sent every `flush_every` logged
    steps by one background thread; `flush(wait=True)` sends everything now
    (at checkpoints, so what a checkpoint covers is logged with it). An error
    of a background send is raised at the next flush, not lost.
    """

    def __init__(self, client, run_id: str, flush_every: int = 20) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._client, self._run_id = client, run_id
        self._flush_every = max(1, flush_every)
        self._pending: list = []
        self._steps = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow")
        self._sending = None

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self._steps += 1
        if self._steps >= self._flush_every:
            self.flush()

    def flush(self, wait: bool = False) -> None:
        if self._sending is not None and (wait or self._sending.done()):
            self._sending.result()  # raises a failed send's error
            self._sending = None
        if self._pending and self._sending is None:
            batch, self._pending, self._steps = self._pending, [], 0
            self._sending = self._pool.submit(self._send, batch)
        if wait and self._sending is not None:
            self._sending.result()
            self._sending = None

    def _send(self, metrics: list) -> None:
        for start in range(0, len(metrics), 1000):  # MLflow's limit per log_batch
            self._client.log_batch(self._run_id, metrics=metrics[start : start + 1000])
