"""``stylepass bench``: speed of the presets, the model families and the baselines."""
