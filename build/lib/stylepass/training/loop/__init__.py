"""The training loops (``train`` and ``train-style``), their configs, steps, checkpoints and logs."""
