"""How much video an archive holds, from a sample of its headers: a total and its 95% interval.

Reading every to-do video's container header costs two requests a video:
at a million videos, hours of requests before the plan prints. The
listing already says each object's size, and a video's frame count and
duration grow with its size, so `--plan` reads the headers of a random
sample and scales by bytes (the ratio estimator of survey sampling):

    total = sum(y in sample) / sum(x in sample) * X

with y the frames (or seconds) and x the bytes of a sampled video, X the
bytes of all of them. Its variance, with the finite population correction
(a sample of everything is exact), is

    N^2 * (1 - n / N) * s_d^2 / n,   d_i = y_i - ratio * x_i

and the interval is 1.96 standard errors. Videos whose header cannot be
read are left out of the ratio and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    total: float
    half_width: float  # of the 95% interval; 0 when every video was read
    sampled: int  # headers read
    population: int

    @property
    def exact(self) -> bool:
        return self.sampled >= self.population

    def scaled(self, factor: float) -> Estimate:
        return Estimate(
            self.total * factor, self.half_width * factor, self.sampled, self.population
        )


def ratio_estimate(
    values: list[float], sizes: list[float], population_bytes: float, population: int
) -> Estimate:
    """The total of `values` over `population` videos whose sizes add up to
    `population_bytes`, from a sample (`values[i]` of a video of `sizes[i]` bytes)."""
    n = len(values)
    if n == 0 or population == 0:
        return Estimate(0.0, 0.0, n, population)
    if n >= population:
        return Estimate(float(sum(values)), 0.0, n, population)
    sample_bytes = sum(sizes)
    if sample_bytes <= 0:  # sizes say nothing: scale by count instead
        mean = sum(values) / n
        deviations = [v - mean for v in values]
        ratio_total = mean * population
    else:
        ratio = sum(values) / sample_bytes
        deviations = [v - ratio * x for v, x in zip(values, sizes, strict=True)]
        ratio_total = ratio * population_bytes
    if n < 2:  # one header says nothing of the spread
        return Estimate(ratio_total, math.inf, n, population)
    spread = sum(d * d for d in deviations) / (n - 1)
    variance = population**2 * (1 - n / population) * spread / n
    return Estimate(ratio_total, 1.96 * math.sqrt(variance), n, population)
