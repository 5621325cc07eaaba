// Native CPU kernels for revact's two element-wise maps (see activations/functional.py).
//
// Each forward and each backward is one pass over the tensor: the per-element maths and
// the per-(sample, channel) sums of the coefficient gradients happen in the same loop, so a
// step reads x (and the incoming gradient) once and writes one output, as ReLU does. The
// PyTorch composition of the same maths takes 4 passes forward and 10-15 backward.
//
// Contract (checked in Python, and again here): x is a contiguous (N, C, S) tensor, S the
// product of the spatial sizes; every coefficient is a contiguous (N, C) tensor of x's
// dtype (float32 or float64), already expanded from its per-channel or per-sample shape;
// the optional DY-ReLU-C scale is a contiguous (N, S) tensor. The Python side reduces the
// returned (N, C) sums to each coefficient's own shape.
//
// Kernels live in cpu_kernels_impl.h, compiled twice: for the baseline x86-64 (or
// whatever the compiler targets) and, on x86, for AVX2 + FMA; the AVX2 build runs when the
// CPU has it (a wheel built on one machine runs on another). The loops work on 32-byte packs written with GCC/Clang vector extensions (8 floats or
// 4 doubles), so they vectorise with whatever SIMD the build targets, and a row's tail is
// one zero-padded pack: every coefficient sum has the incoming gradient as a factor, so
// padded lanes add nothing.
//
// Loaded with torch.ops.load_library; the ops live under torch.ops.revact.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <tuple>
#include <type_traits>

#define REVACT_ISA baseline
#include "cpu_kernels_impl.h"
#undef REVACT_ISA

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define REVACT_ISA avx2
#include "cpu_kernels_impl.h"
#undef REVACT_ISA
#pragma GCC pop_options

namespace {
// REVACT_CPU_BASELINE=1 in the environment forces the baseline build (for its tests).
bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          std::getenv("REVACT_CPU_BASELINE") == nullptr;
  return yes;
}
}  // namespace
// The AVX2 build of a kernel where the CPU has it, else the baseline build.
#define REVACT_DISPATCH_ISA(kernel) \
  (has_avx2() ? revact_kernels::avx2::kernel : revact_kernels::baseline::kernel)
#else
#define REVACT_DISPATCH_ISA(kernel) revact_kernels::baseline::kernel
#endif

namespace {

void check_rows(const at::Tensor& x, std::initializer_list<const at::Tensor*> coeffs) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous() && x.device().is_cpu(),
              "revact native kernel: x must be a contiguous CPU (N, C, S) tensor");
  for (const at::Tensor* c : coeffs) {
    TORCH_CHECK(c->dim() == 2 && c->size(0) == x.size(0) && c->size(1) == x.size(1) &&
                    c->is_contiguous() && c->scalar_type() == x.scalar_type(),
                "revact native kernel: coefficients must be contiguous (N, C) tensors of "
                "x's dtype");
  }
}

void check_grad(const at::Tensor& grad, const at::Tensor& x) {
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.is_contiguous() &&
                  grad.scalar_type() == x.scalar_type(),
              "revact native kernel: grad must be contiguous, of x's shape and dtype");
}

void check_scale(const at::Tensor& x, const std::optional<at::Tensor>& scale) {
  if (!scale) return;
  TORCH_CHECK(scale->dim() == 2 && scale->size(0) == x.size(0) &&
                  scale->size(1) == x.size(2) && scale->is_contiguous() &&
                  scale->scalar_type() == x.scalar_type(),
              "revact native kernel: scale must be a contiguous (N, S) tensor of x's dtype");
}

at::Tensor acon_forward(const at::Tensor& x, const at::Tensor& p2, const at::Tensor& dp,
                        const at::Tensor& bdp) {
  check_rows(x, {&p2, &dp, &bdp});
  at::Tensor y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "revact_acon_forward",
                             [&] { REVACT_DISPATCH_ISA(acon_forward_kernel<scalar_t>)(x, p2, dp, bdp, y); });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> acon_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& p2, const at::Tensor& dp,
    const at::Tensor& bdp) {
  check_rows(x, {&p2, &dp, &bdp});
  check_grad(grad, x);
  at::Tensor gx = at::empty_like(x);
  at::Tensor sums = at::empty({3, x.size(0), x.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "revact_acon_backward", [&] {
    REVACT_DISPATCH_ISA(acon_backward_kernel<scalar_t>)(grad, x, p2, dp, bdp, gx, sums);
  });
  return {gx, sums[0], sums[1], sums[2]};
}

at::Tensor max2_forward(const at::Tensor& x, const at::Tensor& a0, const at::Tensor& b0,
                        const at::Tensor& da, const at::Tensor& db,
                        const std::optional<at::Tensor>& scale) {
  check_rows(x, {&a0, &b0, &da, &db});
  check_scale(x, scale);
  at::Tensor y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "revact_max2_forward", [&] {
    REVACT_DISPATCH_ISA(max2_forward_kernel<scalar_t>)(x, a0, b0, da, db, scale, y);
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
max2_backward(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& a0,
              const at::Tensor& b0, const at::Tensor& da, const at::Tensor& db,
              const std::optional<at::Tensor>& scale) {
  check_rows(x, {&a0, &b0, &da, &db});
  check_scale(x, scale);
  check_grad(grad, x);
  const int64_t n = x.size(0), channels = x.size(1), s = x.size(2);
  at::Tensor gx = at::empty_like(x);
  at::Tensor sums = at::empty({4, n, channels}, x.options());
  at::Tensor g_scale = scale ? at::zeros({n, s}, x.options()) : at::empty({0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "revact_max2_backward", [&] {
    REVACT_DISPATCH_ISA(max2_backward_kernel<scalar_t>)(grad, x, a0, b0, da, db, scale, gx, sums, g_scale);
  });
  return {gx, sums[0], sums[1], sums[2], sums[3], g_scale};
}

}  // namespace


TORCH_LIBRARY(revact, m) {
  m.def("acon_forward(Tensor x, Tensor p2, Tensor dp, Tensor bdp) -> Tensor");
  m.def(
      "acon_backward(Tensor grad, Tensor x, Tensor p2, Tensor dp, Tensor bdp)"
      " -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "max2_forward(Tensor x, Tensor a0, Tensor b0, Tensor da, Tensor db, Tensor? scale)"
      " -> Tensor");
  m.def(
      "max2_backward(Tensor grad, Tensor x, Tensor a0, Tensor b0, Tensor da, Tensor db,"
      " Tensor? scale) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(revact, CPU, m) {
  m.impl("acon_forward", acon_forward);
  m.impl("acon_backward", acon_backward);
  m.impl("max2_forward", max2_forward);
  m.impl("max2_backward", max2_backward);
}
