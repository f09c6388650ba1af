# The workbench's stages. Each target is a thin wrapper over a CLI you can also call
# directly: `.venv/bin/python -m analysis fit-logit --help`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

# fit-logit options (empty = the CLI's default: bundled seed AU data, seed coding)
IN        ?=
OUT       ?= reports
LABEL_COL ?=
CODING    ?=
REFERENCE ?= neutral
SEED      ?= 0
POLICY    ?= drop

.PHONY: help install fit-logit report-logit benchmark-logit test lint clean

help:
	@echo "make fit-logit   fit the multinomial AU logit, write reports/logit/ and reports/logit.html"
	@echo "                 options: IN=<AU table .csv> OUT=<folder> LABEL_COL=<col> CODING=name|seed|fer2013"
	@echo "                          REFERENCE=<emotion> SEED=<n> POLICY=drop|keep"
	@echo "make report-logit     re-render reports/logit.html from reports/logit/"
	@echo "make benchmark-logit  time and peak memory, 4,473 rows and 100x resampled"
	@echo "make test        run the test suite"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

fit-logit: $(VENV)/.installed
	$(PY) -m analysis fit-logit --out $(OUT) --reference $(REFERENCE) --seed $(SEED) --quality-policy $(POLICY) \
		$(if $(IN),--input $(IN)) $(if $(LABEL_COL),--label-column $(LABEL_COL)) $(if $(CODING),--label-coding $(CODING))

report-logit: $(VENV)/.installed
	$(PY) -m analysis report-logit --out $(OUT)

benchmark-logit: $(VENV)/.installed
	$(PY) -m analysis benchmark-logit

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf reports/logit reports/logit.html
