"""The training core: datasets in, a tuned adapter (or model) and its evaluation report out.

Worker-only. The specification the forms and the API validate (finetune/spec.py) lives outside, in the
finetune app, so the web process never imports this package."""
