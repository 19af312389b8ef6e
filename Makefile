# The README's commands. `make demo` and `make test` work on a fresh clone with only python3.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
DEMO_CUSTOMERS ?= 2000
DEMO_MERCHANTS ?= 40
DEMO_CAMPAIGNS ?= 12
DEMO_DAYS      ?= 60
PYTEST_ARGS    ?=
SCALE          ?= full

.PHONY: install demo test lint run worker beat migrate clean bench

# uv installs the pinned requirements in seconds; plain pip is the fallback where uv cannot be had.
# Bytecode: unlike pip, uv leaves the packages' .pyc files unwritten. Python writes those it imports on first
# use, unless PYTHONDONTWRITEBYTECODE is set (common in containers; set on our CI machine): then every process
# compiled pandas, scipy, scikit-learn and Django from source, 2.5 of the 4 s each manage.py command, test
# worker and server took to start. So where it is set, uv compiles them at install (+15 s, once); where it is
# not, the first command writes them (docs/BENCHMARKS.md, "The first minute of a newcomer").
UV_VERSION := 0.13.8
define pip_install
	if $(PY) -m pip install -q uv==$(UV_VERSION) 2>/dev/null; then \
		$(VENV)/bin/uv pip install --python $(PY) -q $${PYTHONDONTWRITEBYTECODE:+--compile-bytecode} -r $(1); \
	else \
		echo "uv unavailable: installing with pip (slower)"; \
		$(PY) -m pip install -q -r $(1); \
	fi
endef

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(call pip_install,requirements-dev.txt)
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py seed_demo --customers $(DEMO_CUSTOMERS) --merchants $(DEMO_MERCHANTS) \
		--campaigns $(DEMO_CAMPAIGNS) --days $(DEMO_DAYS) --seed 7 --truth-out var/demo_truth.json --replace
	@# Aggregate the whole demo period, from the first event's day (a scheduled run only re-aggregates the last few days).
	-$(PY) manage.py run_job --all --history  # a failed job shows on the overview page; the demo still starts
	$(PY) manage.py demo_login
	@echo "marketing_ai demo: http://127.0.0.1:$(PORT)/"
	$(PY) manage.py runserver --noreload 127.0.0.1:$(PORT)

test: install
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	@# Types (django-stubs, djangorestframework-stubs); the cache in .mypy_cache makes a re-run take seconds.
	$(PY) -m mypy .
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py check

run: migrate
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

worker: install
	@test -n "$$REDIS_URL" || { echo "make worker needs REDIS_URL (e.g. redis://127.0.0.1:6379/0)"; exit 1; }
	$(VENV)/bin/celery -A marketing_ai worker --loglevel=INFO --concurrency=2

beat: migrate
	@test -n "$$REDIS_URL" || { echo "make beat needs REDIS_URL (e.g. redis://127.0.0.1:6379/0)"; exit 1; }
	$(VENV)/bin/celery -A marketing_ai beat --loglevel=INFO

# Benchmarks on PostgreSQL and Redis (bench/run_all.py; docs/BENCHMARKS.md says what each scale needs):
# SCALE=full is the issue's 1 M customers / 10 M events (hours); SCALE=small takes minutes.
bench: install
	@test -n "$$REDIS_URL" || { echo "make bench needs REDIS_URL (e.g. redis://127.0.0.1:6379/0) and PostgreSQL (BENCH_DB_SERVER, default postgres://postgres@127.0.0.1:5432)"; exit 1; }
	@$(PY) -c "import locust, matplotlib" 2>/dev/null || { $(call pip_install,requirements-bench.txt); }
	$(PY) bench/run_all.py --scale $(SCALE)

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* staticfiles var
