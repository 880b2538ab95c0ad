# The two commands: `make run` (the whole site) and `make test` (the whole test suite).
.PHONY: run test setup lint quality bench clean

run: setup
	.venv/bin/python manage.py runstack

test:
	scripts/test.sh

setup:
	scripts/setup.sh

lint:
	scripts/setup.sh dev
	.venv/bin/ruff check .
	.venv/bin/mypy .

quality: setup
	.venv/bin/python -m bench.quality

bench: setup
	for name in finetune serve_engine serve chat knowledge load; do .venv/bin/python -m bench.$$name; done

clean:
	rm -rf var .venv
