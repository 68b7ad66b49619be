"""MLflow metrics sent in batches beside training, against a real SQLite store."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from vda.platform.core.tracking import MetricLogger


class CountingClient(MlflowClient):
    """The real client on the real store; it counts the requests that carry metrics."""

    batches = 0

    def log_batch(self, *args, **kwargs):
        self.batches += 1
        return super().log_batch(*args, **kwargs)


def test_metrics_arrive_in_batches_and_all_of_them_after_a_waiting_flush(tmp_path):
    client = CountingClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.create_run(client.create_experiment("batches")).info.run_id
    logger = MetricLogger(client, run, flush_every=20)
    for step in range(1, 20):
        logger.log({"train/loss": 1.0 / step, "train/lr": 0.1}, step)
    assert client.batches == 0  # nothing sent before 20 steps
    for step in range(20, 46):
        logger.log({"train/loss": 1.0 / step, "train/lr": 0.1}, step)
    logger.flush(wait=False)
    logger.flush(wait=True)
    assert 2 <= client.batches <= 3  # steps 1-20, 21-40 (merged when the first was slow), rest
    history = client.get_metric_history(run, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, 46))  # each once, none lost
    assert {m.step: m.value for m in history}[4] == pytest.approx(0.25)


def test_a_failed_send_is_raised_at_the_next_flush(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    logger = MetricLogger(client, "no-such-run", flush_every=1)
    logger.log({"train/loss": 1.0}, 1)  # sent in the background: the step goes on
    with pytest.raises(MlflowException):
        logger.flush(wait=True)
