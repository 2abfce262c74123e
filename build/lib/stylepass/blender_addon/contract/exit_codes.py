"""Exit codes of every ``stylepass`` command and of the headless Blender jobs (Blender-free).

The same codes for every command, so farm schedulers and scripts can act on them (README,
"Export G-buffers from headless Blender"):

====  ===========================================================  ===============================
code  meaning                                                      what to do
====  ===========================================================  ===============================
0     done (e.g. every frame of this shard is exported)
1     unexpected failure (Blender crashed, a bug)                  retry, then report it
2     bad input: scene without camera, Workbench engine, damaged   fix the input; retrying will
      .blend, frame range outside the scene, bad option or recipe  not help
3     the output folder cannot be written, or the disk is full     free space or choose another
                                                                   folder, then re-run to resume
4     the requested Blender is not installed                       ``python3 build.py setup``
5     training stopped on a non-finite loss                        see the named last good
                                                                   checkpoint; lower the
                                                                   learning rate
6     train-preset: the new model misses a quality bar of          look at the named sheet; train
      bars.toml (the shipped preset is left as it was)             longer or change the recipe,
                                                                   or --accept-worse
130   cancelled (Ctrl-C, SIGTERM)                                  run the same command again to
                                                                   resume
====  ===========================================================  ===============================
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit codes of every ``stylepass`` command (see the module docstring)."""

    OK = 0
    FAILED = 1            # unexpected error: worth a retry, then a bug report
    BAD_INPUT = 2         # the scene, a setting or an argument is wrong: fix it, do not retry
    OUTPUT_UNWRITABLE = 3  # the output folder cannot be written
    NO_BLENDER = 4        # the requested Blender is not installed or does not start
    DIVERGED = 5          # training stopped on a non-finite loss (the last good checkpoint is kept)
    BARS_MISSED = 6       # train-preset: the new model misses a quality bar; nothing was installed
    CANCELLED = 130       # interrupted (Ctrl-C / SIGTERM); re-run the same command to resume
