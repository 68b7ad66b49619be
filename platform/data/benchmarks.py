"""The five evaluation benchmarks by name: what `vda prepare` records and `vda eval` reads.

Data preparation must know them (it records which benchmark a data set is in
its manifest) and evaluation builds its protocols on them, so the names live
here, below both.
"""

from __future__ import annotations

BENCHMARKS: tuple[str, ...] = ("sintel", "kitti", "bonn", "scannet", "nyuv2")
_ALIASES = {"nyu_v2": "nyuv2", "nyu": "nyuv2", "nyudepthv2": "nyuv2", "mpi-sintel": "sintel"}


def normalise_benchmark(name: str) -> str:
    """A benchmark name as written by people (`NYU`, `mpi-sintel`) as vda keys it."""
    key = name.strip().lower()
    return _ALIASES.get(key, key)
