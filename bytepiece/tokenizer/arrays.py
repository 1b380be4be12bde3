"""The arrays a model is segmented with (``EncoderArrays``) and how they are built."""

from ..cache import EncoderArrays, build_arrays

__all__ = ["EncoderArrays", "build_arrays"]
