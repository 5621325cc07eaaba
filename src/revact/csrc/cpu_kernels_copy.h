// One copy of the kernels (cpu_kernels_impl.h), included by cpu_kernels.cpp once per
// instruction set with REVACT_ISA (the namespace), REVACT_VEC_BYTES (the pack width) and,
// for the x86 copies, REVACT_TARGET (the target options) defined; it undefines them.
// (No include guard: it is meant to be included more than once.)

// REVACT_ISA_AVX: an x86 copy (AVX2 + FMA at least): masked tails, FMA, shuffles.
#if defined(REVACT_TARGET)
#define REVACT_ISA_AVX 1
#if defined(__clang__)
REVACT_PRAGMA(clang attribute push(__attribute__((target(REVACT_TARGET))), apply_to = function))
#else
REVACT_PRAGMA(GCC push_options)
REVACT_PRAGMA(GCC target(REVACT_TARGET))
#endif
#else
#define REVACT_ISA_AVX 0
#endif

#include "cpu_kernels_impl.h"

#if defined(REVACT_TARGET)
#if defined(__clang__)
REVACT_PRAGMA(clang attribute pop)
#else
REVACT_PRAGMA(GCC pop_options)
#endif
#endif

#undef REVACT_ISA_AVX
#undef REVACT_TARGET
#undef REVACT_VEC_BYTES
#undef REVACT_ISA
