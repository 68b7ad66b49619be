"""Training from several data sets at once: video clip sets and pseudo-labelled image sets.

The paper trains the head on labelled video clips and on images a teacher
labelled. Each source is its own Ray Data set (its own clip length: 1 for
images), sharded over the workers; every step draws one source by weight,
the same draw on every rank (the generator is seeded by the global step, so
a resumed run draws what the interrupted one would have). Image batches
(T = 1) get the spatial loss only, since the temporal term needs two frames
(`total_loss`); each source's terms are logged under its name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class SourceConfig:
    name: str  # in metric names: train/<name>/ssi, ...
    path: str  # a prepared data set (vda prepare or vda pseudolabel), local or s3://
    weight: float = 1.0  # relative share of the steps
    clip_len: int | None = None  # default data.clip.clip_len; image sets: 1

    def __post_init__(self) -> None:
        if self.weight <= 0:
            raise ValueError(f"data.sources: {self.name!r} needs a positive weight")
        if not self.name or "/" in self.name:
            raise ValueError(f"data.sources: {self.name!r} is not a usable name")


def dataset_key(index: int) -> str:
    return f"train_{index}"


class SourceMix:
    """Batches from several sources; `next(step)` -> (source name, batch or None).

    A source that runs dry starts its next pass (a small image set is seen
    again rather than ending the epoch); None only if a fresh pass is empty.
    """

    def __init__(
        self, names: list[str], weights: list[float], passes: Callable[[int], Iterator], seed: int
    ) -> None:
        self.names = names
        self.p = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
        self._passes = passes
        self._iterators: list[Iterator | None] = [None] * len(names)
        self.seed = seed

    def choose(self, step: int) -> int:
        return int(np.random.default_rng([self.seed, step]).choice(len(self.names), p=self.p))

    def next(self, step: int) -> tuple[str, Any]:
        index = self.choose(step)
        for _ in range(2):
            if self._iterators[index] is None:
                self._iterators[index] = self._passes(index)
            batch = next(self._iterators[index], None)
            if batch is not None:
                return self.names[index], batch
            self._iterators[index] = None
        return self.names[index], None
