# Two commands do all set-up on a fresh machine:
#   make run    -> venv + pinned requirements, then the app on http://127.0.0.1:8050
#   make test   -> the same, plus Debian chromium for browser tests, then pytest
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3

.PHONY: run test browser

run: $(STAMP)
	$(PY) app.py $(ARGS)

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

# Real-browser tests need Debian's chromium (never `playwright install`: no network).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }
