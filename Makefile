# Sharewise: two commands on a fresh machine.
#   make run   creates .venv, installs the project (its run-time dependencies only), applies
#              migrations and runs `sharewise serve`
#   make test  installs what the tests need (Python and Debian packages), then lint + the suite
# Set SHAREWISE_TEST_SERVICES=1 to include the PostgreSQL / Redis / RabbitMQ tests.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP  := $(VENV)/.installed-stamp
DEBIAN_PACKAGES := poppler-utils chromium chromium-driver fonts-dejavu-core
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint install system-deps bench clean

# What `make run` needs: the project and its run-time dependencies, without byte-compiling them
# (Python compiles what it imports on first use): about 15 s from pip's cache, where the
# development extras (Playwright, moto, schemathesis...) would add more than a minute.
$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -m pip install --quiet --no-compile -e . 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -c "import sharewise.plugin, sharewise.forms, sharewise.tasks"
	touch $(RUN_STAMP)

# What `make test` (and the benchmarks) need on top: the [dev] extras.
$(STAMP): $(RUN_STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
	$(BIN)/python -c "import sharewise.plugin, sharewise.forms, sharewise.tasks, pypdfium2, playwright"
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests use: poppler's pdftoppm, headless Chromium and its driver, and the
# DejaVu font the form template embeds (needed only to regenerate the template).
system-deps:
	@if ! command -v pdftoppm >/dev/null || [ ! -x /usr/bin/chromium ] \
	    || [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then \
	  echo "installing Debian packages: $(DEBIAN_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; \
	fi

run: $(RUN_STAMP)
	$(BIN)/sharewise serve

lint: install
	$(BIN)/ruff check .

test: install system-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	@for b in bench/bench_*.py; do \
	  echo "== $$b"; $(BIN)/python -m bench.$$(basename $$b .py) || exit 1; \
	done

clean:
	rm -rf $(VENV) var .pytest_cache
