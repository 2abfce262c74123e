"""Model tests use one CPU thread: tiny networks gain nothing from more, and a single thread
does not stall when other processes (Blender renders, other suites) share the cores."""

import torch

torch.set_num_threads(1)
