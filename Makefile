# Two commands do all the set-up on a fresh machine:
#   make lab    virtual environment + kernel, then JupyterLab on notebooks/
#   make test   the same set-up, then every test, nbval over every notebook included (quick mode)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
KERNEL := tasks-lab
STAMP := $(VENV)/.installed
LAB_PORT ?= 8888

.PHONY: lab test setup system-deps run bench report lint clean strip

setup: $(STAMP)

# The first Python >= 3.12 found: $LAB_PYTHON, the PATH, then pyenv's versions (active or not).
$(STAMP): pyproject.toml
	@set -e; py=""; \
	for cand in "$$LAB_PYTHON" python3.13 python3.12 python3 \
	    $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -rV) \
	    /usr/bin/python3.1[2-9] /usr/local/bin/python3.1[2-9]; do \
	  [ -n "$$cand" ] || continue; \
	  if "$$cand" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then py="$$cand"; break; fi; \
	done; \
	if [ -z "$$py" ]; then echo "No Python 3.12 or newer found (set LAB_PYTHON=/path/to/python3.12)." >&2; exit 1; fi; \
	echo "Using $$py ($$("$$py" --version))"; \
	[ -x "$(PY)" ] || "$$py" -m venv "$(VENV)"
	@# uv installs the project in ~20 s where pip took ~85 s (cold caches, docs/libraries.md); its cache stays in the
	@# venv (hard links, no second copy), and its temporary files (setuptools' build locks) and ipykernel's (an
	@# empty tmp*_kernels folder) go to a folder of ours, removed after.
	@# --compile-bytecode: the .pyc files pip writes at install too; where PYTHONDONTWRITEBYTECODE is set (as on
	@# this machine), without them every process of every lab compiled Django and the queue libraries anew.
	$(PY) -m pip install --quiet uv
	mkdir -p $(VENV)/tmp && TMPDIR=$(VENV)/tmp UV_CACHE_DIR=$(VENV)/uv-cache \
	  $(PY) -m uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev]'
	TMPDIR=$(VENV)/tmp $(PY) -m ipykernel install --sys-prefix --name $(KERNEL) \
	  --display-name "Python (tasks lab)" >/dev/null && rm -rf $(VENV)/tmp
	touch $(STAMP)

# Debian packages the experiments drive: installed only where missing (needs root, as CI has). Each is
# checked by its command, named like the package (chromium: /usr/bin/chromium, which the browser probe drives),
# but the servers whose programs are off the PATH: postgresql by /usr/lib/postgresql/<major>/bin/initdb,
# rabbitmq-server by /usr/lib/rabbitmq/bin/rabbitmq-server. The lab runs its own servers: a post-install script
# would start system ones (RabbitMQ on 0.0.0.0:5672, Redis on 6379), so apt-get runs under a policy-rc.d that denies
# every service start (invoke-rc.d's rule: exit 101), ours only when the machine has none, removed after.
SYSTEM_PACKAGES := wrk chromium redis-server postgresql rabbitmq-server
POLICY_RC := /usr/sbin/policy-rc.d
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  if [ "$$p" = postgresql ]; then compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing="$$missing $$p"; \
	  elif [ "$$p" = rabbitmq-server ]; then [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing="$$missing $$p"; \
	  else command -v $$p >/dev/null || missing="$$missing $$p"; fi; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    if [ ! -e $(POLICY_RC) ]; then trap 'rm -f $(POLICY_RC)' EXIT; printf '#!/bin/sh\nexit 101\n' > $(POLICY_RC); \
	      chmod 755 $(POLICY_RC); fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "Missing:$$missing (run 'sudo apt-get install$$missing', then stop the services it starts)" >&2; exit 1; fi; fi

lab: setup system-deps
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) \
	  $(if $(CI),--no-browser,) $(if $(filter 0,$(shell id -u)),--allow-root,) $(JUPYTER_ARGS)

# Three pytest-xdist workers: most of a test's time is spent waiting on the servers it started, and the verdicts must
# hold on a busy machine anyway. Each test file is one unit of work, and the notebooks two (tests/conftest.py): at
# most two notebooks run at once; the slow units go first. TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 3
test: setup system-deps
	$(VENV)/bin/ruff check labsite helpers tests
	LAB_QUICK=1 $(VENV)/bin/pytest --nbval-lax --nbval-kernel-name=$(KERNEL) -p no:cacheprovider \
	  -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# Every numbered notebook in full mode, headless (papermill), into one run folder under data/runs/.
run: setup system-deps
	$(PY) -m helpers run $(NOTEBOOKS)

bench: setup system-deps
	$(PY) -m helpers bench $(NAME)

# The README's findings block and docs/findings/ charts from data/reference/, and index.html of the latest rerun
# (else of the reference, in data/runs/reference-report/). `python -m helpers report --check` only checks.
report: setup
	$(PY) -m helpers report

lint: setup
	$(VENV)/bin/ruff check labsite helpers tests

# The virtual environment, the test sessions' scratch folders (what a session cut short left in .tmp/) and every
# run folder of data/runs/ but the newest KEEP_RUNS (by name: each begins with its UTC start time; other folders,
# like reference-report/, stay). `make clean KEEP_RUNS=0` removes every run.
KEEP_RUNS ?= 5
RUNS_DIR ?= data/runs
SCRATCH_DIR ?= .tmp
clean:
	rm -rf $(VENV) $(SCRATCH_DIR)
	@ls -d $(RUNS_DIR)/[0-9]*/ 2>/dev/null | sort | head -n -$(KEEP_RUNS) | xargs -r rm -rf --

# Notebooks are committed without outputs, but for the verdict cell nbval compares (metadata keep_output).
strip: setup
	$(PY) -m helpers strip
