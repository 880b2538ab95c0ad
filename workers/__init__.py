"""Worker-only code: only Celery workers import it (tests/test_import_contract.py proves no web module reaches
it). serving/ is the inference engine, training/ the training loop, models/ the model loading both share."""
