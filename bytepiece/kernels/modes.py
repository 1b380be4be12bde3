"""The encode kernels' modes, importable without numba (``kernels.encode`` loads it)."""

#: Viterbi (log p per cell), sampling with weights p ** alpha, sampling in the log domain
VITERBI, LINEAR, LOG = 0, 1, 2
