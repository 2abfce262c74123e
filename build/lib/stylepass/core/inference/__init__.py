"""Running a trained model on frames: device choice, tiling, the stylise command's engine and
the worker process the add-on talks to."""
