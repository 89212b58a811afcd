"""Training: typed experiment config, checkpoints, the accelerate loop."""
