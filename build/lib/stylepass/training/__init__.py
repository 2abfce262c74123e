"""Training: configs, datasets, losses, metrics, the training loop, checkpoints, export, CLI."""
