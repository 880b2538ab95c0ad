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
	for script in bench/*.py; do .venv/bin/python $$script; done

clean:
	rm -rf var .venv
