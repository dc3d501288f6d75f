"""The Ascend chips edgetrack converts for: what ATC calls them, what they compute in, and how fast they are.

Runtime-side data (the NPU simulator enforces these constraints and estimates latency from them), so this module
imports only the standard library.

Naming. Huawei's documentation names product series, not chips; the mapping used here is Huawei's own
("Atlas 推理系列产品(Ascend 310P处理器)" in the CANN application-development guide, ``IsAscend310()`` = "Atlas
200/300/500 推理产品" and ``IsAscend310B()`` = "Atlas 200I/500 A2 推理产品" in the MindX SDK API):

============  ==================================  =================================================
 edgetrack     Huawei product series               examples
============  ==================================  =================================================
 ascend310     Atlas 200/300/500 inference         Atlas 200 DK, Atlas 200 AI accelerator module
 ascend310b    Atlas 200I/500 A2 inference         Atlas 200I DK A2, Orange Pi AIpro
 ascend310p    Atlas inference series              Atlas 300I Pro, Atlas 300I Duo (two chips)
 ascend910     Atlas training series               Atlas 800 training server, Atlas 300T
============  ==================================  =================================================

``--soc_version`` values. From the CANN ATC docs (``--soc_version``): "Ascend310" for the 310, "Ascend310P*",
"Ascend910*" and "Ascend310B*" (example ``--soc_version=Ascend310B1``) for the others, where ``*`` depends on the
chip's bin; the exact value is ``Ascend`` + the ``Name`` that ``npu-smi info`` prints on the device. The full
lists below are those of Ascend's RecSDK (gitcode.com/Ascend/RecSDK, ``cust_op/ascendc_op/config/transform.json``,
which maps each soc_version to its chip family).

Precision. The AI Core's cube unit multiplies in fp16 (and int8 after quantization), never fp32: the CANN ONNX
operator spec for Conv gives its weight and bias as float16 and states that ATC's
``--precision_mode=must_keep_origin_dtype`` is not supported for float/float64 Conv inputs, and
``--precision_mode`` defaults to ``force_fp16`` ("原图中算子精度为float16、bfloat16和float32时,强制选择float16").
So an fp32 ONNX graph runs with fp16 convolutions on every chip here.

Throughput figures are published peaks (cited per chip in ``sources``); latency estimates made from them are
estimates, not measurements.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from edgetrack.errors import InvalidArgumentError, UnknownChoiceError

__all__ = ["Soc", "SOCS", "get_soc", "soc_for_version", "COMPUTE_PRECISIONS"]

# What the AI Core's cube computes in (see the module docstring); fp32 is accepted at a graph's interface only.
COMPUTE_PRECISIONS = ("fp16", "int8")

_GIB = 1 << 30


@dataclass(frozen=True)
class Soc:
    """One Ascend chip family.

    ``soc_versions[0]`` is the default ``--soc_version``; the others are the bins of the same chip.
    ``peak_fp16_tflops`` / ``peak_int8_tops`` and ``device_memory_gib`` describe ``reference_product``; ``sources``
    says where each figure comes from and how sure it is.
    """

    name: str
    chip: str
    product_series: str
    products: tuple[str, ...]
    soc_versions: tuple[str, ...]
    peak_fp16_tflops: float
    peak_int8_tops: float
    device_memory_gib: float
    reference_product: str
    compute_precisions: tuple[str, ...] = COMPUTE_PRECISIONS
    # ATC's default and the only mode that keeps every operator on the AI Core in fp16 (see the module docstring).
    atc_precision_mode: str = "force_fp16"
    # converter_lite's [ascend_context] precision_mode default (MindSpore Lite "Ascend Conversion Tool" docs).
    converter_lite_precision_mode: str = "enforce_fp16"
    sources: Mapping[str, str] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self):
        if not self.soc_versions:
            raise InvalidArgumentError(f"Soc {self.name!r} needs at least one soc_version")
        for what in ("peak_fp16_tflops", "peak_int8_tops", "device_memory_gib"):
            value = getattr(self, what)
            if not value > 0:
                raise InvalidArgumentError(f"Soc {self.name!r}: {what} must be positive, got {value!r}")
        object.__setattr__(self, "sources", dict(self.sources))

    @property
    def default_soc_version(self) -> str:
        return self.soc_versions[0]

    @property
    def device_memory_bytes(self) -> int:
        return int(self.device_memory_gib * _GIB)

    def check_soc_version(self, soc_version: str | None) -> str:
        """The canonical spelling of ``soc_version`` (case-insensitive), the default for ``None``, or a typed error."""
        if soc_version is None:
            return self.default_soc_version
        if not isinstance(soc_version, str):
            raise InvalidArgumentError(f"soc_version must be a string, got {type(soc_version).__name__}")
        for v in self.soc_versions:
            if v.lower() == soc_version.strip().lower():
                return v
        raise UnknownChoiceError(
            f"soc_version for {self.name} ({self.chip})",
            soc_version,
            self.soc_versions,
            fix="run `npu-smi info` on the device and pass Ascend<Name> with --soc-version",
        )

    def peak_ops_per_second(self, precision: str) -> float:
        """Published peak multiply-accumulate throughput (ops/s) for ``precision`` ("fp16" or "int8")."""
        if precision == "fp16":
            return self.peak_fp16_tflops * 1e12
        if precision == "int8":
            return self.peak_int8_tops * 1e12
        raise UnknownChoiceError(
            f"compute precision on {self.chip}", precision, self.compute_precisions,
            fix="the AI Core computes convolutions in fp16 or int8; fp32 graphs run in fp16 there",
        )


_ATC_SOC_DOC = (
    "CANN ATC docs, --soc_version (hiascend.com canncommercial 60RC1 atctool_0064, 62RC1 atctool_000066); "
    "bins: Ascend RecSDK cust_op/ascendc_op/config/transform.json"
)

SOCS: dict[str, Soc] = {
    s.name: s
    for s in (
        Soc(
            name="ascend310",
            chip="Ascend 310",
            product_series="Atlas 200/300/500 inference products",
            products=("Atlas 200 DK", "Atlas 200 AI accelerator module", "Atlas 300I inference card (model 3000/3010)",
                      "Atlas 500 AI edge station"),
            soc_versions=("Ascend310",),
            peak_fp16_tflops=8.0,
            peak_int8_tops=16.0,
            device_memory_gib=4.0,
            reference_product="Ascend 310 in its typical configuration (8 W)",
            sources={
                "peak": "HiSilicon, 'Key information about the Huawei Ascend 310' (2018): 16 TOPS@INT8 and "
                        "8 TOPS@FP16 in typical configuration at 8 W. The Atlas 200 AI accelerator module's "
                        "high-power setting reaches 22 TOPS int8 at 11 W (support.huawei.com EDOC1100223191).",
                "memory": "not found in the stored documentation: the Atlas 200 module ships in several memory "
                          "sizes; 4 GiB is taken as the budget (conservative, unverified)",
                "soc_version": _ATC_SOC_DOC,
            },
        ),
        Soc(
            name="ascend310b",
            chip="Ascend 310B",
            product_series="Atlas 200I/500 A2 inference products",
            products=("Atlas 200I DK A2", "Atlas 500 A2 smart station", "Orange Pi AIpro"),
            soc_versions=("Ascend310B1", "Ascend310B2", "Ascend310B3", "Ascend310B4"),
            peak_fp16_tflops=4.0,
            peak_int8_tops=8.0,
            device_memory_gib=8.0,
            reference_product="Orange Pi AIpro, 8 TOPS version (8 GB LPDDR4X)",
            sources={
                "peak": "Orange Pi AIpro specification (orangepi.cn, quoted in a 2024 review on coloradmin.cn): "
                        "FP16 4 TFLOPS, INT8 8 TOPS, LPDDR4X 8 GB or 16 GB. 20 TOPS boards of this family "
                        "exist (not verified here); the smallest is taken.",
                "memory": "Orange Pi AIpro: 8 GB or 16 GB LPDDR4X; 8 GiB taken",
                "soc_version": _ATC_SOC_DOC + "; Ascend310B1 is the ATC docs' example for Atlas 200I/500 A2",
            },
        ),
        Soc(
            name="ascend310p",
            chip="Ascend 310P",
            product_series="Atlas inference series",
            products=("Atlas 300I Pro", "Atlas 300V Pro", "Atlas 300I Duo (two chips)"),
            soc_versions=("Ascend310P3", "Ascend310P1", "Ascend310P5", "Ascend310P7",
                          "Ascend310P3vir01", "Ascend310P3vir02", "Ascend310P3vir04", "Ascend310P3vir08"),
            peak_fp16_tflops=70.0,
            peak_int8_tops=140.0,
            device_memory_gib=24.0,
            reference_product="one Ascend 310P as on the Atlas 300I Pro card",
            sources={
                "peak": "INT8: Atlas 300I Duo, two 310P chips, 280 TOPS INT8 and 96 GB LPDDR4X (Gamers Nexus "
                        "teardown as reported by avalanchenoticias.com.br / infogioco.it), i.e. 140 TOPS per chip. "
                        "FP16 70 TFLOPS: half the INT8 rate, the same 2:1 ratio as the 310 (16/8) and 910 "
                        "(512/256); derived, not found stated in the stored documentation.",
                "memory": "Atlas 300I Pro: 24 GB (project brief; not found in the stored documentation). "
                          "The Duo has 48 GB per chip; the smaller figure is the budget.",
                "soc_version": _ATC_SOC_DOC + "; Ascend310P3 is the bin the MindSpore Lite Ascend docs use "
                               "for Atlas inference series examples",
            },
        ),
        Soc(
            name="ascend910",
            chip="Ascend 910",
            product_series="Atlas training series",
            products=("Atlas 800 training server (model 9000/9010)", "Atlas 300T training card"),
            soc_versions=("Ascend910A", "Ascend910ProA", "Ascend910B", "Ascend910ProB", "Ascend910PremiumA"),
            peak_fp16_tflops=256.0,
            peak_int8_tops=512.0,
            device_memory_gib=32.0,
            reference_product="Ascend 910 (Hot Chips 2019 figures, 350 W)",
            sources={
                "peak": "Hot Chips 2019 / Huawei launch: 256 TFLOPS FP16 and 512 TOPS INT8 at 350 W (golem.de, "
                        "elecfans.com). Later bins are quoted up to 320 TFLOPS; the launch figure is taken.",
                "memory": "32 GB HBM (project brief; not found in the stored documentation)",
                "soc_version": _ATC_SOC_DOC + ". The 910B family (Ascend910B1..B4, Atlas A2) is a different "
                               "chip and is not this target",
            },
        ),
    )
}

# Accepted spellings besides the canonical name: "Ascend 310P", "ascend-310p", "310p", "Ascend310P".
_ALIASES = {s.name.removeprefix("ascend"): s.name for s in SOCS.values()}


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.strip().lower() if ch.isalnum())


def get_soc(name) -> Soc:
    """The :class:`Soc` called ``name`` ("ascend310", "Ascend 310P", "310b", ...) or a typed error listing the names.

    ``--soc_version`` values are not chip names ("Ascend910B" is a bin of the 910, not the 910B family): map them
    with :func:`soc_for_version`.
    """
    if isinstance(name, Soc):
        return name
    if not isinstance(name, str):
        raise UnknownChoiceError("Ascend chip", name, SOCS, fix="pass one of the chip names listed")
    key = _normalise(name)
    if key in SOCS:
        return SOCS[key]
    if key in _ALIASES:
        return SOCS[_ALIASES[key]]
    raise UnknownChoiceError("Ascend chip", name, SOCS, fix="pass one of the chip names listed")


def soc_for_version(soc_version: str) -> Soc:
    """The chip family of an ATC ``--soc_version`` value ("Ascend310B4" -> ascend310b), or a typed error."""
    if isinstance(soc_version, str):
        key = _normalise(soc_version)
        for soc in SOCS.values():
            if any(_normalise(v) == key for v in soc.soc_versions):
                return soc
    known = [v for soc in SOCS.values() for v in soc.soc_versions]
    raise UnknownChoiceError(
        "soc_version", soc_version, known, fix="run `npu-smi info` on the device and pass Ascend<Name>"
    )
