"""What the scripts in benchmarks/ share: run edgetrack from this checkout, and a time-stamped log line.

Scripts import it as ``from _checkout import use_checkout, log`` (their own folder is first on ``sys.path`` when run
as ``python benchmarks/NAME.py``).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def use_checkout() -> None:
    """Import edgetrack from this checkout; map models/ and converters/ to edgetrack.models / .converters when it
    is not installed (setup.py does that mapping for an installed edgetrack).

    Call it at import, so processes started with spawn/forkserver (which import the script again) get it as well.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import edgetrack

    try:
        import edgetrack.converters  # noqa: F401 - installed with setup.py's folder mapping
        import edgetrack.models  # noqa: F401
    except ImportError:
        edgetrack.__path__.append(str(ROOT))  # ROOT/converters -> edgetrack.converters, ROOT/models -> ...models


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
