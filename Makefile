# Developer shortcuts; the README's two commands are scripts/demo.sh and scripts/test.sh.
.PHONY: setup demo test plugin desktop-check resources lint clean

setup:
	scripts/setup.sh

demo:
	scripts/demo.sh

test:
	scripts/test.sh

plugin: setup
	.venv/bin/python scripts/build_plugin.py

desktop-check:
	scripts/desktop_check.sh

resources: setup
	.venv/bin/python scripts/make_resources.py

lint: setup
	.venv/bin/ruff check engine plugin scripts tests benchmarks
	.venv/bin/ruff format --check engine plugin scripts tests benchmarks

clean:
	rm -rf build dist demo_output .pytest_cache .qgis-settings
