"""The number format a likelihood model reads in: bfloat16 where the CPU computes it natively,
else float32 (`native_bfloat16`; the measurements are in `ReasonerLikelihood`'s ``dtype``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

__all__ = ["LikelihoodDType", "native_bfloat16"]

LikelihoodDType = Literal["auto", "float32", "bfloat16"]
"""The number format `ReasonerLikelihood` reads in (``"auto"``: `native_bfloat16` decides)."""

_CPU_FLAGS = Path("/proc/cpuinfo")


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (the ``avx512_bf16`` or ``amx_bf16``
    flag of Linux's ``/proc/cpuinfo``). Elsewhere — another OS, an older CPU — False: an
    emulated bfloat16 matmul is slower than float32, so guessing wrong costs time, not
    correctness."""
    try:
        flags = _CPU_FLAGS.read_text(errors="replace")
    except OSError:
        return False
    return bool(re.search(r"\b(?:avx512_bf16|amx_bf16)\b", flags))
