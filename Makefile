# Two commands do all set-up on a fresh machine:
#   make run    -> venv + pinned requirements, then the app on http://127.0.0.1:8050
#   make test   -> the same, plus Debian chromium (browser tests) and redis-server
#                  (the Celery scale-out test), then pytest
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3

.PHONY: run test sysdeps

run: $(STAMP)
	$(PY) app.py $(ARGS)

test: $(STAMP) sysdeps
	$(PY) -m pytest $(PYTEST_ARGS)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

# Real-browser tests need Debian's chromium (never `playwright install`: no network);
# the scale-out test needs redis-server.
sysdeps:
	@{ test -x /usr/bin/chromium && command -v redis-server >/dev/null; } || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver redis-server; }
