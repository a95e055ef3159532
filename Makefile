# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCENARIO ?= concurrent_users
USERS ?= 100
RATE ?= 10
DURATION ?= 30s
WORKERS ?= 2
PROFILE ?=
HOST ?= 127.0.0.1
PORT ?= 8000
SERVICE_WORKERS ?= 1
STORE ?= data/store
# command:package (the package's name where the command's differs)
SYSTEM_PACKAGES := wrk docker-compose chromium prometheus faketime ip:iproute2

.PHONY: setup system-deps scenario-check run distributed test serve bench seed-scripts lint format clean perf-baseline perf-check criteria scalability perf-report

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m harness._locust_hook install >/dev/null  # `locust --help` lists the harness's options
	touch $(STAMP)

setup: $(STAMP)

# Debian tools the tests and benchmarks drive (wrk, docker-compose for `config`, prometheus for
# tests/harness/recording/test_prometheus.py, faketime and ip for the agents' clock and network-namespace tests); installed only where
# missing. The tests start their own Prometheus: the system service
# Debian's package starts (and its node exporter) is stopped and disabled.
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $${p%%:*} >/dev/null || missing="$$missing $${p#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    case " $$missing " in *" prometheus "*) for s in prometheus prometheus-node-exporter; do \
	      (systemctl disable --now $$s || (service $$s stop; update-rc.d $$s disable)) >/dev/null 2>&1 || true; \
	    done;; esac; \
	  else echo "missing Debian packages:$$missing (run 'sudo make system-deps')"; exit 1; fi; \
	fi

# The main job: a real load test against the embedded service; ends by printing the run directory.
# `make run` echoes the locust command it runs. Its load: -u/-r/-t from USERS/RATE/DURATION; with PROFILE=name the
# profile sets users and time, so -u/-r are not passed and -t only when DURATION is given (a cap on the profile).
# THRESHOLDS='p95 < 50ms;failure_ratio < 1%' adds thresholds (';'-separated). make turns any failing command into
# its own exit status 2; the harness's code is in make's "Error N" line and in the run's "Verdict: ... (exit code
# N: ...)" line; the locust command itself returns it (3: threshold breached).
given = $(filter command line environment,$(origin $(1)))
RUN_LOAD = $(if $(PROFILE),--profile $(PROFILE)$(if $(call given,DURATION), -t $(DURATION)),-u $(USERS) -r $(RATE) -t $(DURATION))
RUN_ARGS = -f locustfiles/$(SCENARIO).py --headless $(RUN_LOAD)$(if $(THRESHOLDS), --threshold '$(THRESHOLDS)')

# Refuses an unknown SCENARIO, listing locustfiles/*.py; says which of USERS/RATE a PROFILE overrides.
scenario-check:
	@test -f locustfiles/$(SCENARIO).py || { echo "unknown scenario '$(SCENARIO)': choose one of:" \
	  $$(cd locustfiles && ls *.py | sed 's/[.]py$$//') "(make run SCENARIO=cpu_intensive)" >&2; exit 2; }
	@$(if $(and $(PROFILE),$(call given,USERS)$(call given,RATE)),echo "USERS/RATE not passed: profile \
	  '$(PROFILE)' sets the users over time" >&2)
	@$(BIN)/python -m harness._locust_hook install >/dev/null

run: setup scenario-check
	$(BIN)/locust $(RUN_ARGS)

# One master and WORKERS worker processes (Locust's --processes), same locustfile, profile and thresholds.
distributed: setup scenario-check
	$(BIN)/locust $(RUN_ARGS) --processes $(WORKERS)

# Two phases. Four xdist workers (on two cores) for the shared tests: their real runs' fixed lengths are partly
# spent waiting, and four workers keep about 1.6 of the two cores busy.
# Then the tests marked `exclusive` (timing, CPU saturation), one at a time with the machine to themselves. In one
# xdist run (they locked the others out, tests/conftest.py) the workers already holding shared tests idled while
# each exclusive one ran: 6:51-8:53 over five runs, by how the two kinds happened to meet. Work stealing (an idle
# worker takes a busy one's pending tests) shortened the shared phase's tail: 5:58-6:40 against 6:33-6:45.
test: setup system-deps
	@status=0; \
	$(BIN)/python -m pytest -q -n 4 --dist worksteal --durations=20 -m "not exclusive" $(TEST_ARGS) || status=$$?; \
	$(BIN)/python -m pytest -q --durations=5 -m exclusive $(TEST_ARGS) || status=$$?; \
	exit $$status

TEST_ARGS = --ignore=tests/performance/benchmarks

serve: setup
	$(BIN)/python -m service --host $(HOST) --port $(PORT) --workers $(SERVICE_WORKERS) --store-path $(STORE)

bench: setup system-deps
	$(BIN)/python -m pytest tests/performance/benchmarks/ --benchmark-only -s

# The regression gate (README "Baselines and the regression gate"): micro benchmarks through pytest-benchmark's own
# storage and comparison, and a campaign against the stored baseline. `make perf-baseline` creates both baselines
# (commit baselines/ to share them); `make perf-check` fails when either gate finds a regression (exit 1 from the
# micro benchmarks, 4 from the campaign) or the campaign cannot reach significance (5).
PERF_BASELINE ?= main
PERF_REPEAT ?= 10
PERF_DURATION ?= 20s
PERF_USERS ?= 50
PERF_WARMUP ?= 5
PERF_BENCH ?= tests/performance/benchmarks/test_store_bench.py tests/performance/benchmarks/test_pipeline_bench.py
PERF_BENCH_FAIL ?= median:15%
PERF_OUT ?= perf-report
BENCH_STORAGE := file://baselines/benchmarks
PERF_CAMPAIGN = $(BIN)/python -m harness campaign --repeat $(PERF_REPEAT) --warmup $(PERF_WARMUP) --name perf -- \
  -f locustfiles/$(SCENARIO).py -u $(PERF_USERS) -r $(PERF_USERS) -t $(PERF_DURATION) --only-summary

perf-baseline: setup
	$(BIN)/python -m pytest $(PERF_BENCH) --benchmark-only --benchmark-storage=$(BENCH_STORAGE) --benchmark-autosave
	$(PERF_CAMPAIGN) | tee $(VENV)/perf-campaign.log
	$(BIN)/python -m harness baseline save "$$(sed -n 's/^campaign directory: //p' $(VENV)/perf-campaign.log)" \
	  --as $(PERF_BASELINE)

perf-check: setup
	@status=0; \
	$(BIN)/python -m pytest $(PERF_BENCH) --benchmark-only --benchmark-storage=$(BENCH_STORAGE) \
	  --benchmark-compare --benchmark-compare-fail=$(PERF_BENCH_FAIL) || status=1; \
	$(PERF_CAMPAIGN) | tee $(VENV)/perf-campaign.log; \
	campaign="$$(sed -n 's/^campaign directory: //p' $(VENV)/perf-campaign.log)"; \
	if [ -z "$$campaign" ]; then exit 2; fi; \
	$(BIN)/python -m harness compare $(PERF_BASELINE) "$$campaign" --out $(PERF_OUT) || status=$$?; \
	exit $$status

# Seed 002's 17 success criteria, measured and judged (criteria.html/.json/.md in runs/; exit 3 on a failure).
criteria: setup
	$(BIN)/python -m harness criteria

# Seed 000's scalability suites at full size (minutes), and its performance report over everything in runs/.
scalability: setup
	FEATURELOAD_SCALE=full $(BIN)/python -m pytest tests/performance/scalability -s -p no:cacheprovider

perf-report: setup
	$(BIN)/python tests/performance/profiling/performance_reporter.py

# The seed's own scripts, unchanged but for sys.path and /app/data (includes its 3-minute stability run).
seed-scripts: setup
	$(BIN)/python -m tests.seed_scripts --run all

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .benchmarks .hypothesis
