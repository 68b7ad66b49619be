"""The steps of `make gpu-check` (scripts/gpu_check.py runs them), one module each."""
