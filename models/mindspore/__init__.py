"""MindSpore twins of the model families (``edgetrack.models.mindspore``)."""
import os
import platform

# MindSpore's CPU kernels hand oneDNN plain NCHW tensors; on CPUs with AVX-512 oneDNN then picks its *reference*
# convolution (``jit_uni_ncsp:conv+ref:any``), about 100x slower than the ``gemm:jit`` path it takes when capped at
# AVX2 (measured with MindSpore 2.10 on an AMD EPYC: a 64->64 3x3 convolution, 3.2 s vs 0.03 s). The cap is read
# lazily, at oneDNN's first convolution, so setting it here (before any model runs) is enough; setdefault keeps a
# value the user chose. x86 only: the ISA names mean nothing to oneDNN on Arm (Kunpeng hosts of Ascend servers).
# PyTorch's own oneDNN reads the same variable, so its CPU convolutions in this process use AVX2 kernels too.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
