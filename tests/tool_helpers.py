"""Stand-ins for the vendor tools (ATC, AMCT, converter_lite) that the converter tests put on PATH, and a PATH
without the real ones (this machine has no CANN; a developer's might). Imported by name (pytest puts tests/ on
sys.path); the ``no_tools`` and ``fake_bin`` fixtures in conftest.py use them."""
import os
import stat
from pathlib import Path

# Every tool an Ascend conversion may run.
VENDOR_TOOLS = ("atc", "amct_onnx", "converter_lite")


def make_tool(folder: Path, name: str, body: str) -> Path:
    """An executable shell script ``folder/name`` running ``body``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def path_without(*tools: str) -> str:
    """PATH with every folder holding one of ``tools`` left out."""
    return os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not any((Path(d) / t).exists() for t in tools))
