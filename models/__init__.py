"""Training-side model definitions (installed as ``edgetrack.models``).

``models/torch/<family>.py`` and ``models/mindspore/<family>.py`` hold the same classes with the same parameter
names, so one safetensors checkpoint loads into either framework. Never imported by the runtime.
"""
