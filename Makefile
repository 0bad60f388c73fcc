# leadscore: `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.spark-installed
DEMO_DATA := demo_data
# The synthetic history ends on this day; the demo trains and scores as of it.
DEMO_AS_OF := 2026-11-01
BENCH_SIZES ?= 100000 1000000
# memory is measured at this many open leads and at 4x
BENCH_MEMORY_BASE ?= 1000000

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint docs bench bench-scale bench-spark clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-9s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install leadscore with its dev extras

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install ## Generate synthetic CRM data, train, register, score, and print a summary
	$(BIN)/leadscore demo-data --out $(DEMO_DATA) --leads 20000 --seed 0
	$(BIN)/leadscore train --data $(DEMO_DATA) --as-of $(DEMO_AS_OF) --report model_report.html
	$(BIN)/leadscore score --data $(DEMO_DATA) --as-of $(DEMO_AS_OF)
	$(BIN)/leadscore monitor --data $(DEMO_DATA) --as-of $(DEMO_AS_OF)
	$(BIN)/leadscore agreement --data $(DEMO_DATA) --as-of $(DEMO_AS_OF)
	$(BIN)/leadscore runs
	@echo "Open model_report.html in a browser, or the runs in MLflow: $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db"

$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(SPARK_STAMP)

test: install $(SPARK_STAMP) ## Run the whole test suite, Spark tests included (three workers on two cores: end-to-end tests wait on their subprocesses)
	$(BIN)/pytest -n 3 --dist worksteal --durations=25

test-fast: install ## Unit and property tests only (no CLI runs, PostgreSQL, Spark or shared data): under a minute
	$(BIN)/pytest -n 2 -m "not e2e and not spark and not postgres and not shared_data and not slow"

lint: install ## Check the code with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

docs: install ## Regenerate docs/configuration.md from the config model
	$(BIN)/python -m leadscore.pipeline.config_reference > docs/configuration.md

bench: install ## Every performance figure against its target, one table (benchmarks/results/summary.md; about 40 min)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/scoring.py --open-leads $(BENCH_SIZES)
	$(BIN)/python benchmarks/startup.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/training.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/memory.py --open-leads $(BENCH_MEMORY_BASE)
	$(BIN)/python benchmarks/runs.py
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/summary.py

bench-scale: install $(SPARK_STAMP) ## Training at scale: 1M leads, 12 monthly cutoffs, pandas and Spark local[2] (about an hour)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/scale.py --leads 1000000
	$(BIN)/python benchmarks/summary.py

bench-spark: install $(SPARK_STAMP) ## Benchmark score --engine spark (local[2]) against the default engine at 1M open leads
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/spark.py --open-leads 1000000

clean: ## Remove demo outputs (demo data, mlflow.db, mlruns, scores.db, reports)
	rm -rf $(DEMO_DATA) mlflow.db mlruns scores.db model_report.html monitor_report.json
