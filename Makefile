# The two commands of the README: `make demo` and `make test`. Both create .venv and install edgetrack into it
# with every extra (one consistent set: NumPy < 2 because of MindSpore), then run.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.edgetrack-installed

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[all]"
	@# CSRT and KCF (baselines) live in OpenCV's contrib build, which ships the same cv2 module as the headless
	@# build: installing both makes them overwrite each other. Replace one with the other at the same version.
	bash tools/use_opencv_contrib.sh $(PY)
	@# The torch backend's converter, without its torchvision dependency (see pyproject.toml's torch-backend extra).
	$(PIP) install --no-deps "onnx2torch==1.5.15"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/edgetrack demo

test: setup
	EDGETRACK_NO_PROGRESS=1 $(PY) -m pytest -n 2 --durations=15

clean:
	rm -rf $(VENV) build *.egg-info
