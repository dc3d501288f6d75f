import os

import numpy as np
import pytest

os.environ.setdefault("EDGETRACK_NO_PROGRESS", "1")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def moving_target_sequence(tmp_path):
    """Make a tiny tracking ``Sequence``: a textured target moving on a grey background, frames written as PNG."""
    import cv2

    from edgetrack.data.sequence import Sequence

    def make(name: str = "seq", n: int = 8, size: tuple[int, int] = (96, 72), step: tuple[int, int] = (4, 2)):
        folder = tmp_path / f"frames-{name}"
        folder.mkdir()
        frames, boxes = [], []
        for i in range(n):
            img = np.full((size[1], size[0], 3), 110, np.uint8)
            x, y = 10 + step[0] * i, 12 + step[1] * i
            cv2.rectangle(img, (x, y), (x + 19, y + 15), (30, 40, 220), -1)
            cv2.circle(img, (x + 6, y + 5), 3, (240, 240, 40), -1)
            path = folder / f"{i + 1:08d}.png"
            cv2.imwrite(str(path), img)
            frames.append(str(path))
            boxes.append((x, y, 20, 16))
        return Sequence(name, tuple(frames), np.array(boxes, dtype=np.float64), dataset="tiny")

    return make


@pytest.fixture
def no_tools(monkeypatch):
    """No vendor tool (ATC, AMCT, converter_lite) on PATH."""
    from tool_helpers import VENDOR_TOOLS, path_without

    monkeypatch.setenv("PATH", path_without(*VENDOR_TOOLS))


@pytest.fixture
def fake_bin(tmp_path, monkeypatch, no_tools):
    """A folder first on PATH (and no real vendor tool) for stand-ins written with ``tool_helpers.make_tool``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder
