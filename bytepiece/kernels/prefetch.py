"""A software prefetch for the kernels: ``prefetch(array, index)`` asks the CPU to bring the cache
line of ``array[index]`` in, without waiting for it and without a fault if the index is out of
range (LLVM's ``llvm.prefetch``; a no-op where the CPU has none).

The training kernels look n-grams and pieces up in tables of hundreds of MB, one cache miss per
lookup; the lookups of a text position are known a few positions ahead, so asking for them
early overlaps the misses instead of paying them one after another."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, array, index):
    """Prefetch ``array[index]`` for reading (1-D arrays, integer index; no bounds check needed:
    a prefetch of an invalid address is dropped)."""
    if not isinstance(array, types.Array) or array.ndim != 1 or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(array)(context, builder, args[0])
        idx = context.cast(builder, args[1], index, types.intp)
        ptr = builder.gep(ary.data, [idx])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(array, index), codegen
