"""Ray Tune sweeps over the training job."""
