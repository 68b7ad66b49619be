"""Ray Tune sweeps over training (`sweep.py`) or over evaluation settings (`eval_sweep.py`)."""
