"""`import edgetrack` (the robot's side) must not need torch, mindspore, onnx or matplotlib."""
import subprocess
import sys
import textwrap

BLOCK = textwrap.dedent(
    """
    import sys
    class _Block:
        blocked = {"torch", "mindspore", "onnx", "matplotlib", "skimage", "tqdm", "safetensors"}
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.blocked:
                raise ImportError(f"{name} is blocked in this test")
            return None
    sys.meta_path.insert(0, _Block())
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], capture_output=True, text=True)


def test_runtime_imports_with_training_libraries_blocked():
    proc = _run(
        """
        import edgetrack, edgetrack.metrics, edgetrack.data, edgetrack.data.sequence
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "mindspore", "onnx", "matplotlib"})
        assert not heavy, heavy
        print("ok", edgetrack.__version__)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_models_and_converters_map_into_the_edgetrack_namespace():
    import importlib.util

    for name in ("edgetrack.models", "edgetrack.models.torch", "edgetrack.models.mindspore", "edgetrack.converters"):
        assert importlib.util.find_spec(name) is not None, name
    assert importlib.util.find_spec("models") is None or "site-packages" not in str(
        importlib.util.find_spec("models").origin
    )
