// Native CPU kernels for revact's two element-wise maps (see activations/functional.py).
//
// Each forward and each backward is one pass over the tensor: the per-element maths and
// the per-(sample, channel) sums of the coefficient gradients happen in the same loop, so a
// step reads x (and the incoming gradient) once and writes one output, as ReLU does. The
// PyTorch composition of the same maths takes 4 passes forward and 10-15 backward.
//
// Contract (checked in Python, and again here): x is a contiguous (N, C, *) tensor of
// float32 or float64, or a contiguous (N, *, C) one with channels_last = true; a
// coefficient is an (N, C) tensor (ACON's p1, p2, β) or an (N, C, 2) one (DY-ReLU's slopes
// a and intercepts b) of x's dtype, any strides (an expanded per-channel parameter has
// stride 0 over N); DY-ReLU-C's scale is a contiguous tensor with one value per sample and
// position, e.g. (N, 1, H, W). Coefficient gradients come back per (N, C[, 2]); the Python
// side sums them to each coefficient's own shape.
//
// The kernels live in cpu_kernels_impl.h, compiled up to three times (cpu_kernels_copy.h):
// for the baseline the compiler targets and, on x86-64, for AVX2 + FMA and for AVX-512
// (setup.py defines REVACT_AVX2 / REVACT_AVX512 when its probes show the compiler honours
// the per-function targets below); the highest build the CPU has runs (so a build made on
// one machine runs on another). The loops work on packs written with GCC/Clang vector
// extensions (32 bytes, 8 floats or 4 doubles; 64 bytes in the AVX-512 build), so they
// vectorise with the SIMD of the build, and a row's tail is one zero-padded pack: every
// coefficient sum has the incoming gradient as a factor, so padded lanes add nothing.
//
// The per-element maths follows the PyTorch bodies' order of operations, so infinities
// and NaNs come out where PyTorch's do; its float exp is its own, as exact as PyTorch's
// (cpu_kernels_impl.h).
//
// C++17 (torch < 2.12 builds extensions with -std=c++17): no C++20 library features.
// Loaded with torch.ops.load_library; the ops live under torch.ops.revact.

#if !defined(__GNUC__) && !defined(__clang__)
#error "revact's native kernels need GCC or Clang (GCC vector extensions)"
#endif

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace revact_kernels {
// std::bit_cast (C++20) for the trivially copyable types used here.
template <typename To, typename From>
inline To bit_cast(const From& from) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast between types of different sizes");
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
}
}  // namespace revact_kernels

// One copy of the kernels per instruction set: cpu_kernels_copy.h compiles
// cpu_kernels_impl.h in namespace REVACT_ISA for REVACT_TARGET (GCC's target pragma, or
// Clang's equivalent: Clang ignores the GCC one), and each runs only where the CPU has
// that set (choice()).
#define REVACT_PRAGMA_TEXT(...) _Pragma(#__VA_ARGS__)
#define REVACT_PRAGMA(...) REVACT_PRAGMA_TEXT(__VA_ARGS__)

#define REVACT_ISA baseline
#define REVACT_VEC_BYTES 32
#include "cpu_kernels_copy.h"

#if defined(__x86_64__) && defined(REVACT_AVX2)
#define REVACT_HAS_AVX2_BUILD 1
#define REVACT_ISA avx2
#define REVACT_VEC_BYTES 32
#define REVACT_TARGET "avx2,fma"
#include "cpu_kernels_copy.h"
#else
#define REVACT_HAS_AVX2_BUILD 0
#endif

#if REVACT_HAS_AVX2_BUILD && defined(REVACT_AVX512)
#define REVACT_HAS_AVX512_BUILD 1
#define REVACT_ISA avx512
#define REVACT_VEC_BYTES 64
#define REVACT_TARGET "avx2,fma,avx512f,avx512dq,avx512bw,avx512vl"  // ATen's AVX512 level
#include "cpu_kernels_copy.h"
#else
#define REVACT_HAS_AVX512_BUILD 0
#endif

namespace {

enum class Isa { baseline, avx2, avx512 };

[[maybe_unused]] bool env_set(const char* name) { return std::getenv(name) != nullptr; }

// Which build of the kernels runs, and why (revact.info() shows it): "avx512", "avx2", or
// "baseline" with the reason. REVACT_CPU_BASELINE and REVACT_CPU_NO_AVX512 hold a CPU to
// a lower build (the tests of each build run on one machine).
std::pair<Isa, const char*> choice() {
#if REVACT_HAS_AVX2_BUILD
  static const std::pair<Isa, const char*> chosen = []() -> std::pair<Isa, const char*> {
    if (env_set("REVACT_CPU_BASELINE"))
      return {Isa::baseline, "baseline (REVACT_CPU_BASELINE is set)"};
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
      return {Isa::baseline, "baseline (the CPU has no AVX2 + FMA)"};
#if REVACT_HAS_AVX512_BUILD
    if (!env_set("REVACT_CPU_NO_AVX512") && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") &&
        revact_kernels::avx512::Sleef_expd8_u10avx512f != nullptr)
      return {Isa::avx512, "avx512"};
#endif
    if (revact_kernels::avx2::Sleef_expd4_u10avx2 == nullptr)
      return {Isa::baseline, "baseline (this libtorch exports no SLEEF exp)"};
    return {Isa::avx2, "avx2"};
  }();
  return chosen;
#elif defined(__x86_64__)
  return {Isa::baseline, "baseline (built without the AVX2 copy)"};
#else
  return {Isa::baseline, "baseline (no AVX2 copy on this architecture)"};
#endif
}

[[maybe_unused]] Isa isa() { return choice().first; }

}  // namespace

// For revact.activations._native (through ctypes): the build that runs.
extern "C" __attribute__((visibility("default"))) const char* revact_cpu_variant() {
  return choice().second;
}

// A kernel's build for the CPU's instruction set (choice()).
#if REVACT_HAS_AVX512_BUILD
#define REVACT_DISPATCH_ISA(kernel)                                             \
  (isa() == Isa::avx512 ? revact_kernels::avx512::kernel                        \
   : isa() == Isa::avx2 ? revact_kernels::avx2::kernel                          \
                        : revact_kernels::baseline::kernel)
#elif REVACT_HAS_AVX2_BUILD
#define REVACT_DISPATCH_ISA(kernel) \
  (isa() == Isa::avx2 ? revact_kernels::avx2::kernel : revact_kernels::baseline::kernel)
#else
#define REVACT_DISPATCH_ISA(kernel) revact_kernels::baseline::kernel
#endif

namespace {

// x: contiguous CPU (N, C, *), or (N, *, C) with channels_last; each coefficient (N, C)
// plus `extra` trailing dims (K = 2), of x's dtype, any strides.
int64_t check_inputs(const at::Tensor& x, bool channels_last,
                     std::initializer_list<const at::Tensor*> coeffs, int64_t extra = 0) {
  TORCH_CHECK(x.dim() >= 2 && x.is_contiguous() && x.device().is_cpu() &&
                  at::isFloatingType(x.scalar_type()),
              "revact native kernel: x must be a contiguous floating-point CPU tensor of "
              "at least 2 dimensions, got ", x.sizes(), " ", x.scalar_type());
  const int64_t channels = x.size(channels_last ? -1 : 1);
  for (const at::Tensor* c : coeffs) {
    TORCH_CHECK(c->dim() == 2 + extra && c->size(0) == x.size(0) && c->size(1) == channels &&
                    c->scalar_type() == x.scalar_type() && c->device().is_cpu() &&
                    (extra == 0 || c->size(2) == 2),
                "revact native kernel: coefficients must be (N, C", extra ? ", 2" : "",
                ") CPU tensors of x's dtype, got ", c->sizes(), " ", c->scalar_type());
  }
  return channels;
}

void check_grad(const at::Tensor& grad, const at::Tensor& x) {
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.is_contiguous() &&
                  grad.scalar_type() == x.scalar_type(),
              "revact native kernel: grad must be contiguous, of x's shape and dtype");
}

// DY-ReLU-C's scale: one value per sample and position, contiguous, e.g. (N, 1, H, W).
void check_scale(const at::Tensor& x, int64_t channels, const std::optional<at::Tensor>& scale) {
  if (!scale) return;
  TORCH_CHECK(scale->is_contiguous() && scale->dim() >= 1 && scale->size(0) == x.size(0) &&
                  scale->numel() * channels == x.numel() &&
                  scale->scalar_type() == x.scalar_type(),
              "revact native kernel: scale must be a contiguous tensor of x's dtype with "
              "one value per sample and position, got ", scale->sizes());
}

// The channels-first or the channels-last build of a kernel, for the CPU's instruction set.
#define REVACT_KERNEL(name, channels_last) \
  ((channels_last) ? REVACT_DISPATCH_ISA(name##_nsc<scalar_t>) \
                   : REVACT_DISPATCH_ISA(name##_kernel<scalar_t>))

at::Tensor acon_forward(const at::Tensor& x, const at::Tensor& p1, const at::Tensor& p2,
                        const at::Tensor& beta, bool channels_last) {
  check_inputs(x, channels_last, {&p1, &p2, &beta});
  at::Tensor y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "revact_acon_forward", [&] {
    REVACT_KERNEL(acon_forward, channels_last)(x, p1, p2, beta, y);
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> acon_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& p1, const at::Tensor& p2,
    const at::Tensor& beta, bool channels_last) {
  const int64_t channels = check_inputs(x, channels_last, {&p1, &p2, &beta});
  check_grad(grad, x);
  at::Tensor gx = at::empty_like(x);
  at::Tensor g_p1 = at::empty({x.size(0), channels}, x.options());
  at::Tensor g_p2 = at::empty_like(g_p1), g_beta = at::empty_like(g_p1);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "revact_acon_backward", [&] {
    REVACT_KERNEL(acon_backward, channels_last)(grad, x, p1, p2, beta, gx, g_p1, g_p2, g_beta);
  });
  return {gx, g_p1, g_p2, g_beta};
}

at::Tensor max2_forward(const at::Tensor& x, const at::Tensor& a, const at::Tensor& b,
                        const std::optional<at::Tensor>& scale, bool channels_last) {
  const int64_t channels = check_inputs(x, channels_last, {&a, &b}, 1);
  check_scale(x, channels, scale);
  at::Tensor y = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "revact_max2_forward", [&] {
    REVACT_KERNEL(max2_forward, channels_last)(x, a, b, scale, y);
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> max2_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& a, const at::Tensor& b,
    const std::optional<at::Tensor>& scale, bool channels_last) {
  const int64_t channels = check_inputs(x, channels_last, {&a, &b}, 1);
  check_scale(x, channels, scale);
  check_grad(grad, x);
  at::Tensor gx = at::empty_like(x);
  at::Tensor g_a = at::empty({x.size(0), channels, 2}, x.options());
  at::Tensor g_b = at::empty_like(g_a);
  at::Tensor g_scale = scale ? at::zeros_like(*scale) : at::empty({0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "revact_max2_backward", [&] {
    REVACT_KERNEL(max2_backward, channels_last)(grad, x, a, b, scale, gx, g_a, g_b, g_scale);
  });
  return {gx, g_a, g_b, g_scale};
}

}  // namespace

TORCH_LIBRARY(revact, m) {
  m.def(
      "acon_forward(Tensor x, Tensor p1, Tensor p2, Tensor beta, bool channels_last)"
      " -> Tensor");
  m.def(
      "acon_backward(Tensor grad, Tensor x, Tensor p1, Tensor p2, Tensor beta,"
      " bool channels_last) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "max2_forward(Tensor x, Tensor a, Tensor b, Tensor? scale, bool channels_last)"
      " -> Tensor");
  m.def(
      "max2_backward(Tensor grad, Tensor x, Tensor a, Tensor b, Tensor? scale,"
      " bool channels_last) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(revact, CPU, m) {
  m.impl("acon_forward", acon_forward);
  m.impl("acon_backward", acon_backward);
  m.impl("max2_forward", max2_forward);
  m.impl("max2_backward", max2_backward);
}
