"""The training core: datasets in, a tuned adapter (or model) and its evaluation report out.

Worker-only. This file stays free of imports so that importing a submodule that needs no torch
(``finetune.training.spec``, used by forms) does not pull torch into the web process.
"""
