"""Prints the SIMD feature groups numpy dispatches to on this CPU, space separated (empty on a baseline CPU).

`make test-portable` passes them to NPY_DISABLE_CPU_FEATURES, so the DSP and model tests run once more on
numpy's baseline kernels: a test that only passes on one CPU's float bits fails there.
"""

from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

print(" ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f)))
