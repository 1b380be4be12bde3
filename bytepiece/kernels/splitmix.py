"""The numbers behind the kernels' random draws, importable without numba.

``kernels.rng`` (splitmix64, one state per document) and the linear sampler of
``kernels.forward`` (its rescaling bounds) compile them; ``tokenizer.coldstart`` runs the same
arithmetic in plain Python for a process's first kilobytes, so both give the same draws.
"""

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
#: a uniform is the top 53 bits of a draw times 2 ** -53
TO_UNIT = 1.0 / 9007199254740992.0
#: the linear sampler rescales the totals behind a position when one leaves [LOW, HIGH]
RESCALE_HIGH = 1e100
RESCALE_LOW = 1e-100
