#!/usr/bin/env bash
# Swap opencv-python-headless for opencv-contrib-python-headless of the same version, in the environment of the
# given Python. Both wheels install the same `cv2` package, so having both makes them overwrite each other and
# uninstalling either breaks the other; contrib is a superset (it adds the CSRT and KCF trackers used as
# baselines). edgetrack's runtime itself works with either.
set -euo pipefail
PY="${1:-python3}"
ver="$("$PY" -c 'import importlib.metadata as m; print(m.version("opencv-python-headless"))' 2>/dev/null || true)"
if [ -z "$ver" ]; then
    echo "opencv-python-headless is not installed in $PY's environment; nothing to swap"
    "$PY" -c 'import cv2; print("cv2", cv2.__version__, "contrib trackers:", hasattr(cv2, "TrackerCSRT_create"))'
    exit 0
fi
"$PY" -m pip uninstall -y opencv-python-headless
"$PY" -m pip install --no-deps "opencv-contrib-python-headless==$ver"
"$PY" -c 'import cv2; assert hasattr(cv2, "TrackerCSRT_create"), "contrib trackers missing"; print("cv2", cv2.__version__, "with contrib trackers")'
