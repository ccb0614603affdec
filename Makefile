# Quick start: `make demo` and `make test`. Both create .venv/ when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean browser

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q -e ".[dev]"
	# pytorch-grad-cam is only the peer for the CAM cross-checks; its opencv-python-headless
	# requirement would shadow opencv-contrib (ximgproc), so it comes without dependencies.
	$(PY) -m pip install -q --no-deps "grad-cam>=1.5" ttach
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mmattr explain examples/scene.png --text "a red circle" --out explanations/demo --overwrite

test: $(STAMP) browser
	$(PY) -m pytest -q

# The audit report is tested in headless Chromium (Debian's `chromium`). Installed without
# prompts when missing and running as root with apt (CI); otherwise that one test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	    echo "could not install chromium: the browser test will be skipped"; \
	  else echo "chromium missing (apt-get install chromium as root): the browser test will be skipped"; fi; }

clean:
	rm -rf $(VENV) explanations .pytest_cache
