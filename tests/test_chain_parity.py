"""benchmarks/chain_parity.py: PyTorch vs MindSpore vs ONNX (either export) through the same Tracker code."""
import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mindspore")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgetrack.models.torch.siamrpn import save_siamrpn  # noqa: E402

from bundle_helpers import load_benchmark  # noqa: E402
from torch_helpers import tiny_siamrpn  # noqa: E402


def test_the_four_rows_agree_and_each_runs_its_own_arithmetic(tmp_path, monkeypatch):
    from edgetrack.data.synth import SynthConfig, generate

    cp = load_benchmark("chain_parity")
    ckpt = save_siamrpn(tiny_siamrpn(), tmp_path / "rpn.safetensors")
    data = generate(SynthConfig(sequences=2, frames=5, size=(160, 120), seed=3, pairs=False), tmp_path / "synth",
                    progress=False)
    out = tmp_path / "out"
    used = []
    real = cp._FrameworkSession.run

    def spy(self, feeds):  # the framework rows must really run their framework's graphs
        used.append(self._outputs[0])
        return real(self, feeds)

    monkeypatch.setattr(cp._FrameworkSession, "run", spy)
    assert cp.main(["--checkpoint", str(ckpt), "--model", "siamrpn-tiny", "--test-data", f"synthetic:{data}",
                    "--out", str(out), "--crops", "3"]) == 0
    result = json.loads((out / "chain_parity.json").read_text())
    rows = {r["row"]: r for r in result["rows"]}
    assert list(rows) == ["pytorch", "mindspore", "onnx-torch", "onnx-mindspore"]
    assert rows["pytorch"]["error"]["max_rel"] == 0.0
    for name in ("mindspore", "onnx-torch", "onnx-mindspore"):
        assert 0.0 < rows[name]["error"]["max_rel"] < 1e-4  # other arithmetic, the same function
    for r in rows.values():
        assert 0.0 <= r["auc_sharp"] <= 1.0 and 0.0 <= r["auc_blurred"] <= 1.0
        assert np.isfinite(r["delta_sharp"]) and np.isfinite(r["delta_blurred"])
    assert {"kernel", "features", "cls"} <= set(used)  # template, search and head by the frameworks
    text = (out / "chain_parity.md").read_text()
    assert "| MindSpore twin |" in text and "| onnx fp32 (MindSpore export) |" in text
    import mindspore as ms

    assert ms.get_context("mode") == ms.PYNATIVE_MODE  # the script's graph mode does not leak into other tests
