"""Model weights by reference (a file or a training run's checkpoint, local or s3://): read
once, hashed, loaded.

The one place a job turns its `checkpoint` setting into a model, so every job
reads weights the same way, records the same sha256 and fails with the same
one-line message when they are missing or do not load.
"""

from .source import CHECKPOINT_FILE, Weights, checkpoint_file, read_weights

__all__ = ["CHECKPOINT_FILE", "Weights", "checkpoint_file", "read_weights"]
