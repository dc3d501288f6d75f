"""Ascend NPU data and helpers shared by the converter and the device runtime.

- :mod:`edgetrack.ascend.socs`: the chips (310, 310B, 310P, 910): ``--soc_version`` names, compute precisions,
  published throughput and memory.
- :mod:`edgetrack.ascend.ops`: Huawei's supported ONNX operator list and :func:`audit_graph`.
- :mod:`edgetrack.ascend.aipp`: static AIPP (on-chip preprocessing): the ATC config file and its numpy twin.

Needs only numpy and the standard library (onnx is imported when a graph is audited), so the simulator and the
robot's side can use it.
"""
from edgetrack.ascend.aipp import AippConfig
from edgetrack.ascend.ops import Finding, audit_graph, load_operator_list
from edgetrack.ascend.socs import SOCS, Soc, get_soc, soc_for_version

__all__ = ["AippConfig", "Finding", "audit_graph", "load_operator_list", "SOCS", "Soc", "get_soc", "soc_for_version"]
