"""Training data: paired and unpaired datasets, augmentation, deterministic crops, target images."""
