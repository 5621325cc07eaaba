// The kernels of cpu_kernels.cpp, compiled once per instruction set (cpu_kernels_copy.h):
// inside namespace REVACT_ISA, with that set's target options.
// (No include guard: it is meant to be included more than once.)

namespace revact_kernels::REVACT_ISA {


// Elements per parallel task: below this, thread start-up costs more than the work.
constexpr int64_t kGrain = 1 << 15;
// Positions per task of DY-ReLU-C's channels-first backward (a multiple of every pack width).
constexpr int64_t kRowChunk = 1024;

// Packs of REVACT_VEC_BYTES bytes, the build's SIMD width: 32 (8 floats, 4 doubles) in
// the baseline and AVX2 builds, 64 (16 floats, 8 doubles) in the AVX-512 one.
template <typename T>
struct Pack;
template <>
struct Pack<float> {
  using V = float __attribute__((vector_size(REVACT_VEC_BYTES)));
  using I = int32_t __attribute__((vector_size(REVACT_VEC_BYTES)));
  static constexpr int64_t width = REVACT_VEC_BYTES / sizeof(float);
};
template <>
struct Pack<double> {
  using V = double __attribute__((vector_size(REVACT_VEC_BYTES)));
  static constexpr int64_t width = REVACT_VEC_BYTES / sizeof(double);
};

template <typename V, typename T>
inline V splat(T value) {
  return V{} + value;
}

// n lanes from p; the rest zero. A row's tail (n < width) is a masked load and store in
// the AVX builds: a copy of variable length there costs more than the pack's arithmetic,
// and short rows spend many of their packs in tails (a 7×7 map's 49 positions: one pack
// in four with AVX-512).
#if REVACT_VEC_BYTES == 64
inline __mmask16 tail_mask(const float*, int64_t n) { return (__mmask16)((1u << n) - 1); }
inline __mmask8 tail_mask(const double*, int64_t n) { return (__mmask8)((1u << n) - 1); }
inline __m512 masked_load(const float* p, int64_t n) {
  return _mm512_maskz_loadu_ps(tail_mask(p, n), p);
}
inline __m512d masked_load(const double* p, int64_t n) {
  return _mm512_maskz_loadu_pd(tail_mask(p, n), p);
}
inline void masked_store(float* p, __m512 v, int64_t n) {
  _mm512_mask_storeu_ps(p, tail_mask(p, n), v);
}
inline void masked_store(double* p, __m512d v, int64_t n) {
  _mm512_mask_storeu_pd(p, tail_mask(p, n), v);
}
#elif REVACT_ISA_AVX
inline __m256i tail_mask(const float*, int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i tail_mask(const double*, int64_t n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
inline __m256 masked_load(const float* p, int64_t n) {
  return _mm256_maskload_ps(p, tail_mask(p, n));
}
inline __m256d masked_load(const double* p, int64_t n) {
  return _mm256_maskload_pd(p, tail_mask(p, n));
}
inline void masked_store(float* p, __m256 v, int64_t n) {
  _mm256_maskstore_ps(p, tail_mask(p, n), v);
}
inline void masked_store(double* p, __m256d v, int64_t n) {
  _mm256_maskstore_pd(p, tail_mask(p, n), v);
}
#endif

// A full pack is a copy of constant size (one vector move) even where load is not inlined:
// folding it into the tail's variable-length copy cost channels-last ACON 1.13x -> 1.30x
// channels-first (benchmarks/native_kernels.py --layouts).
template <typename V, typename T>
inline V load(const T* p, int64_t n) {
  V v{};
  if (n == Pack<T>::width) {
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
#if REVACT_ISA_AVX
  return (V)masked_load(p, n);
#else
  std::memcpy(&v, p, static_cast<size_t>(n) * sizeof(T));
  return v;
#endif
}

template <typename V, typename T>
inline void store(T* p, const V& v, int64_t n) {
  if (n == Pack<T>::width) {
    std::memcpy(p, &v, sizeof(V));
    return;
  }
#if REVACT_ISA_AVX
  masked_store(p, v, n);
#else
  std::memcpy(p, &v, static_cast<size_t>(n) * sizeof(T));
#endif
}

// The sum of a pack's lanes, pairwise (halves added until one lane is left): a chain of
// log2(width) additions instead of width - 1, with the AVX builds' shuffles.
#if REVACT_ISA_AVX
inline float lane_sum(__m128 v) {
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}
inline double lane_sum(__m128d v) { return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v))); }
inline float lane_sum(__m256 v) {
  return lane_sum(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}
inline double lane_sum(__m256d v) {
  return lane_sum(_mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1)));
}
#if REVACT_VEC_BYTES == 64
inline float lane_sum(__m512 v) {
  return lane_sum(_mm256_add_ps(_mm512_castps512_ps256(v),
                                _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}
inline double lane_sum(__m512d v) {
  return lane_sum(_mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1)));
}
#endif
#else
template <typename V>
inline auto lane_sum(const V& v) {
  using T = std::decay_t<decltype(v[0])>;
  constexpr int lanes = sizeof(V) / sizeof(T);
  T part[lanes];
  std::memcpy(part, &v, sizeof(V));
  for (int half = lanes / 2; half > 0; half /= 2)
    for (int i = 0; i < half; ++i) part[i] += part[i + half];
  return part[0];
}
#endif

// body(i, n) over [0, s) a pack at a time; n is the pack's number of real lanes, a
// compile-time constant but in the tail (the bodies are generic lambdas marked INLINE:
// a call per pack would cost more than the pack's arithmetic).
#define INLINE __attribute__((always_inline))
template <typename T, typename F>
inline void for_packs(int64_t s, const F& body) {
  constexpr int64_t w = Pack<T>::width;
  int64_t i = 0;
  for (; i + w <= s; i += w) body(i, std::integral_constant<int64_t, w>{});
  if (i < s) body(i, s - i);
}

// p·q + r. In the AVX builds one fused multiply-add (one rounding), used only inside exp's
// reduced range, where no step can overflow: everywhere else the kernels round each step
// as ATen's kernels do (setup.py compiles with -ffp-contract=off).
inline Pack<float>::V mul_add(Pack<float>::V p, Pack<float>::V q, Pack<float>::V r) {
#if REVACT_VEC_BYTES == 64
  return _mm512_fmadd_ps(p, q, r);
#elif REVACT_ISA_AVX
  return _mm256_fmadd_ps(p, q, r);
#else
  return p * q + r;
#endif
}

// exp of a float pack: the σ built on it is as exact as PyTorch's (measured over
// [-87, 88]: at most 2.35 ulp, 0.24 on average, as torch.sigmoid's and as 1/(1 + exp(-z))
// with SLEEF's exp), with overflow to +inf above ln(FLT_MAX), subnormals, 0 below them,
// NaN for NaN.
// Range reduction to [-ln2/2, ln2/2] and the Cephes degree-6 polynomial, with 2^n built as
// two normal factors 2^h·2^(n-h): n reaches ±150, beyond a float's normal exponents, and
// the last product rounds once, to +inf, a subnormal or 0, where the true exp does. Inputs
// beyond ±104 (results inf or 0 either way) are clamped first, keeping n within the
// integer trick's range; NaN passes through (both comparisons are false). Measured against
// SLEEF's (error and speed): benchmarks/exp_accuracy.py.
inline Pack<float>::V exp_pack(Pack<float>::V x) {
  using V = Pack<float>::V;
  using I = Pack<float>::I;
  x = x < -104.0f ? splat<V>(-104.0f) : x;
  x = x > 104.0f ? splat<V>(104.0f) : x;
  // Round x·log2(e) to the nearest integer n with the 1.5·2^23 trick; n's integer
  // value sits in the low mantissa bits of t.
  const V t = mul_add(x, splat<V>(1.44269504088896341f), splat<V>(12582912.0f));
  const V n = t - 12582912.0f;
  // r = x - n·ln2 in two parts (n·0.693359375 is exact for |n| <= 150).
  const V r = mul_add(n, splat<V>(2.12194440e-4f), mul_add(n, splat<V>(-0.693359375f), x));
  V p = splat<V>(1.9875691500e-4f);
  for (const float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                        1.6666665459e-1f, 5.0000001201e-1f})
    p = mul_add(p, r, splat<V>(c));
  p = mul_add(p, r * r, r) + 1.0f;
  const I ni = bit_cast<I>(t) - 0x4B400000;
  const I h = ni >> 1;
  return p * bit_cast<V>((h + 127) << 23) * bit_cast<V>((ni - h + 127) << 23);
}

// float64 is for exactness (tests, gradcheck), not speed: SLEEF's exp (1 ulp) in the AVX
// builds, as ATen's Vectorized<double>::exp; the C library's per lane in the baseline one.
// SLEEF's exp comes from libtorch_cpu, which exports it (ATen's Vectorized<double>::exp
// calls it). Weak: a libtorch without it leaves it null, and choice() then picks a build
// that does not need it.
#if REVACT_VEC_BYTES == 64
extern "C" Pack<double>::V Sleef_expd8_u10avx512f(Pack<double>::V) __attribute__((weak));
inline Pack<double>::V exp_pack(Pack<double>::V x) { return Sleef_expd8_u10avx512f(x); }
#elif REVACT_ISA_AVX
extern "C" Pack<double>::V Sleef_expd4_u10avx2(Pack<double>::V) __attribute__((weak));
inline Pack<double>::V exp_pack(Pack<double>::V x) { return Sleef_expd4_u10avx2(x); }
#else
inline Pack<double>::V exp_pack(Pack<double>::V x) {
  for (int64_t i = 0; i < Pack<double>::width; ++i) x[i] = std::exp(x[i]);
  return x;
}
#endif

// σ(z) as ATen computes it: 1 / (1 + exp(-z)).
template <typename V>
inline V sigmoid(const V& z) {
  return 1 / (1 + exp_pack(-z));
}

// max(u, 0) keeping NaN, as torch.relu does.
template <typename V>
inline V relu(const V& u) {
  return u <= 0 ? V{} : u;
}

// A row (n, c) of x: its index n·C + c, its sample and its channel (kept apart, so a
// coefficient costs no division per row).
struct Row {
  int64_t index, sample, channel;
};

// A coefficient of shape (N, C) or (N, C, K), any strides (an expanded per-channel
// parameter has stride 0 over N).
template <typename T>
struct Coeff {
  const T* data;
  int64_t sn, sc, sk;
  Coeff(const at::Tensor& t)
      : data(t.const_data_ptr<T>()),
        sn(t.stride(0)),
        sc(t.stride(1)),
        sk(t.dim() > 2 ? t.stride(2) : 0) {}
  T operator()(const Row& r, int64_t k = 0) const {
    return data[r.sample * sn + r.channel * sc + k * sk];
  }
};

// Positions per sample of x, whose channel axis holds `channels`.
inline int64_t positions(const at::Tensor& x, int64_t channels) {
  const int64_t rows = x.size(0) * channels;
  return rows == 0 ? 0 : x.numel() / rows;
}

// body(row) for the rows (n, c) of x, in parallel chunks of whole rows.
template <typename F>
void for_rows(const at::Tensor& x, const F& body) {
  const int64_t channels = x.size(1), rows = x.size(0) * channels, s = positions(x, channels);
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(s, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    Row row{begin, begin / channels, begin % channels};
    for (; row.index < end; ++row.index) {
      body(row);
      if (++row.channel == channels) {
        row.channel = 0;
        ++row.sample;
      }
    }
  });
}

// ---------------------------------------------------------------------------- ACON
// y = x·(p2 + dp·σ(bdp·x)), with dp = p1 - p2 and bdp = β·dp.

// The per-element maths of both layouts; a coefficient C is a scalar (channels-first:
// one per row) or a pack (channels-last: one per lane).
template <typename V, typename C>
inline V acon_pack(const V& x, C q2, C dp, C bdp) {
  return x * (q2 + dp * sigmoid(bdp * x));
}

// grad_x of a pack, adding its terms to the sums of the gradients of p1, p2 and β (the last
// still to be multiplied by dp²). The operations and their order are the PyTorch body's
// (functional._acon_backward), so that infinite and NaN inputs give its results: with
// z = bdp·x, s = σ(z), g_ds = g·σ'(z) = g·(1 - s)·s and g_dd = g·dy/dd = s·g + z·g_ds,
// Σ g_dd·x (p1), Σ (g·x - g_dd·x) (p2), Σ g_ds·x·x (β), grad_x = g_dd·dp + g·p2.
template <typename V, typename C>
inline V acon_grad_pack(const V& x, const V& g, C q2, C dp, C bdp, V& sum_p1, V& sum_p2,
                        V& sum_beta) {
  const V z = bdp * x, s = sigmoid(z);
  const V g_ds = g * (1 - s) * s;
  const V g_dd = s * g + z * g_ds;
  const V g_dd_x = g_dd * x;
  sum_p1 += g_dd_x;
  sum_p2 += g * x - g_dd_x;
  sum_beta += g_ds * x * x;
  return g_dd * dp + g * q2;
}

template <typename T>
void acon_forward_kernel(const at::Tensor& x, const at::Tensor& p1, const at::Tensor& p2,
                         const at::Tensor& beta, at::Tensor& y) {
  using V = typename Pack<T>::V;
  const int64_t s = positions(x, x.size(1));
  const Coeff<T> c1(p1), c2(p2), cb(beta);
  const T* xp = x.const_data_ptr<T>();
  T* yp = y.mutable_data_ptr<T>();
  for_rows(x, [&](const Row& row) {
    const T q2 = c2(row), dp = c1(row) - q2, bdp = cb(row) * dp;
    const T* xr = xp + row.index * s;
    T* yr = yp + row.index * s;
    for_packs<T>(s, [&](int64_t i, auto n) INLINE {
      store(yr + i, acon_pack(load<V>(xr + i, n), q2, dp, bdp), n);
    });
  });
}

// grad_x and the (N, C) gradients of p1, p2 and β. With d = dp·x and z = β·d:
// dy/dd = σ(z) + z·σ'(z), dy/dx = p2 + dp·dy/dd, dy/dp1 = x·dy/dd, dy/dp2 = x - dy/dp1,
// dy/dβ = d²·σ'(z) (acon_grad_pack).
template <typename T>
void acon_backward_kernel(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& p1,
                          const at::Tensor& p2, const at::Tensor& beta, at::Tensor& gx,
                          at::Tensor& g_p1, at::Tensor& g_p2, at::Tensor& g_beta) {
  using V = typename Pack<T>::V;
  const int64_t s = positions(x, x.size(1));
  const Coeff<T> c1(p1), c2(p2), cb(beta);
  const T *xp = x.const_data_ptr<T>(), *gp = grad.const_data_ptr<T>();
  T* gxp = gx.mutable_data_ptr<T>();
  T *o1 = g_p1.mutable_data_ptr<T>(), *o2 = g_p2.mutable_data_ptr<T>(),
    *ob = g_beta.mutable_data_ptr<T>();
  for_rows(x, [&](const Row& row) {
    const T q2 = c2(row), dp = c1(row) - q2, bdp = cb(row) * dp;
    const T *xr = xp + row.index * s, *gr = gp + row.index * s;
    T* gxr = gxp + row.index * s;
    V sum_p1{}, sum_p2{}, sum_beta{};
    for_packs<T>(s, [&](int64_t i, auto n) INLINE {
      store(gxr + i, acon_grad_pack(load<V>(xr + i, n), load<V>(gr + i, n), q2, dp, bdp,
                                    sum_p1, sum_p2, sum_beta), n);
    });
    o1[row.index] = lane_sum(sum_p1);
    o2[row.index] = lane_sum(sum_p2);
    ob[row.index] = lane_sum(sum_beta) * (dp * dp);
  });
}

// ---------------------------------------------------------------- max-affine, K = 2
// m = max(a0·x + b0, a1·x + b1) = relu(da·x + db) + b0 + a0·x; y = scale·m. Operations in
// the PyTorch bodies' order (functional._max_affine_forward and _max2_grads).

template <typename V, typename C>
inline V max2_pack(const V& x, C a0, C b0, C da, C db) {
  return relu(db + da * x) + b0 + a0 * x;
}

// grad_x of a pack for the (scaled) incoming g, adding its terms to the sums of g·x and g
// over the positions where branch 0 and where branch 1 wins: w = [da·x + db > 0] as 0 or 1
// (ties and NaN go to branch 0), multiplied in and subtracted element by element as
// PyTorch does (an infinite g·x times w = 0 is NaN there too; an extreme term does not
// cancel against itself across two sums).
template <typename V, typename C>
inline V max2_grad_pack(const V& x, const V& g, C a0, C da, C db, V& sum_g0x, V& sum_g1x,
                        V& sum_g0, V& sum_g1) {
  const V w = db + da * x > 0 ? V{} + 1 : V{};
  const V gx = g * x, g1x = gx * w, g1 = w * g;
  sum_g0x += gx - g1x;
  sum_g1x += g1x;
  sum_g0 += g - g1;
  sum_g1 += g1;
  return g1 * da + g * a0;
}

template <typename T>
void max2_forward_kernel(const at::Tensor& x, const at::Tensor& a, const at::Tensor& b,
                         const std::optional<at::Tensor>& scale, at::Tensor& y) {
  using V = typename Pack<T>::V;
  const int64_t s = positions(x, x.size(1));
  const Coeff<T> ca(a), cb(b);
  const T* xp = x.const_data_ptr<T>();
  const T* sp = scale ? scale->const_data_ptr<T>() : nullptr;
  T* yp = y.mutable_data_ptr<T>();
  for_rows(x, [&](const Row& row) {
    const T a0 = ca(row, 0), b0 = cb(row, 0), da = ca(row, 1) - a0, db = cb(row, 1) - b0;
    const T* xr = xp + row.index * s;
    const T* sr = sp ? sp + row.sample * s : nullptr;
    T* yr = yp + row.index * s;
    for_packs<T>(s, [&](int64_t i, auto n) INLINE {
      V m = max2_pack(load<V>(xr + i, n), a0, b0, da, db);
      if (sr) m *= load<V>(sr + i, n);
      store(yr + i, m, n);
    });
  });
}

// grad_x, the (N, C, 2) gradients of a and b, and the scale's gradient Σ_c g·m (when
// there is a scale). With g' = g·scale (g without a scale) and w = [da·x + db > 0]
// (branch 1 wins; ties go to branch 0): g_a = (Σ g'·x·(1 - w), Σ g'·x·w), g_b likewise
// without x, grad_x = g'·(a0 + w·da).
template <typename T>
void max2_backward_kernel(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& a,
                          const at::Tensor& b, const std::optional<at::Tensor>& scale,
                          at::Tensor& gx, at::Tensor& g_a, at::Tensor& g_b,
                          at::Tensor& g_scale) {
  using V = typename Pack<T>::V;
  const int64_t n_samples = x.size(0), channels = x.size(1), s = positions(x, x.size(1));
  const Coeff<T> ca(a), cb(b);
  const T *xp = x.const_data_ptr<T>(), *gp = grad.const_data_ptr<T>();
  const T* sp = scale ? scale->const_data_ptr<T>() : nullptr;
  T *gxp = gx.mutable_data_ptr<T>(), *oa = g_a.mutable_data_ptr<T>(),
    *ob = g_b.mutable_data_ptr<T>();
  T* gsp = scale ? g_scale.mutable_data_ptr<T>() : nullptr;

  // gx over positions [lo, hi) of a row (and the scale's gradient there, added into its
  // row), and that stretch's sums for the gradients of a and b.
  auto row_part = [&](const Row& row, int64_t lo, int64_t hi, T* sums) INLINE {
    const T a0 = ca(row, 0), b0 = cb(row, 0), da = ca(row, 1) - a0, db = cb(row, 1) - b0;
    const T *xr = xp + row.index * s + lo, *gr = gp + row.index * s + lo;
    const T* sr = sp ? sp + row.sample * s + lo : nullptr;
    T* gsr = gsp ? gsp + row.sample * s + lo : nullptr;
    T* gxr = gxp + row.index * s + lo;
    V sum_g0x{}, sum_g1x{}, sum_g0{}, sum_g1{};
    for_packs<T>(hi - lo, [&](int64_t i, auto n) INLINE {
      const V xv = load<V>(xr + i, n);
      V gv = load<V>(gr + i, n);
      if (sr) {
        store(gsr + i, load<V>(gsr + i, n) + max2_pack(xv, a0, b0, da, db) * gv, n);
        gv *= load<V>(sr + i, n);
      }
      store(gxr + i, max2_grad_pack(xv, gv, a0, da, db, sum_g0x, sum_g1x, sum_g0, sum_g1),
            n);
    });
    sums[0] = lane_sum(sum_g0x);
    sums[1] = lane_sum(sum_g1x);
    sums[2] = lane_sum(sum_g0);
    sums[3] = lane_sum(sum_g1);
  };
  auto write_sums = [&](int64_t row, const auto* sums) {
    oa[2 * row] = static_cast<T>(sums[0]);
    oa[2 * row + 1] = static_cast<T>(sums[1]);
    ob[2 * row] = static_cast<T>(sums[2]);
    ob[2 * row + 1] = static_cast<T>(sums[3]);
  };

  if (sp == nullptr) {
    for_rows(x, [&](const Row& row) {
      T sums[4];
      row_part(row, 0, s, sums);
      write_sums(row.index, sums);
    });
    return;
  }
  // Every channel of a sample adds into the same stretch of the scale's gradient, so a task
  // is one fixed chunk of one sample's positions, its channels in order; the chunks' row
  // sums are then added in chunk order. The chunks do not depend on the thread count (the
  // same result for any), and a batch of one still uses every thread.
  const int64_t chunks = (s + kRowChunk - 1) / kRowChunk;
  std::vector<T> partial(static_cast<size_t>(n_samples * channels * chunks * 4));
  at::parallel_for(0, n_samples * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t i = t / chunks, k = t % chunks, lo = k * kRowChunk;
      for (int64_t ch = 0; ch < channels; ++ch) {
        const Row row{i * channels + ch, i, ch};
        row_part(row, lo, std::min(s, lo + kRowChunk),
                 partial.data() + (row.index * chunks + k) * 4);
      }
    }
  });
  at::parallel_for(0, n_samples * channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      double sums[4] = {0.0, 0.0, 0.0, 0.0};
      for (int64_t k = 0; k < chunks; ++k)
        for (int j = 0; j < 4; ++j) sums[j] += partial[(row * chunks + k) * 4 + j];
      write_sums(row, sums);
    }
  });
}

// ------------------------------------------------------------ channels-last (N, S, C)
// The same maths on x laid out (N, S, C): channels-last feature maps and tokens. A row
// is one position's C channels; the coefficients vary along it, so they are first laid
// out as contiguous (N, C) tables, and the per-(sample, channel) sums run over a
// sample's positions in blocks (float partial sums per block, added into doubles).

constexpr int64_t kSumBlock = 64;  // positions per block of float partial sums

// tables[j] (N, C) contiguous from fill(row, j).
template <typename T, typename F>
at::Tensor coefficient_tables(const at::Tensor& x, int64_t count, const F& fill) {
  const int64_t n = x.size(0), c = x.size(-1);
  at::Tensor tables = at::empty({count, n, c}, x.options());
  T* t = tables.mutable_data_ptr<T>();
  for (int64_t j = 0; j < count; ++j)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t ch = 0; ch < c; ++ch) {
        const Row row{i * c + ch, i, ch};
        t[j * n * c + row.index] = fill(row, j);
      }
  return tables;
}

// body(n, s) for every position of every sample, in parallel chunks.
template <typename F>
void for_positions(const at::Tensor& x, const F& body) {
  const int64_t n = x.size(0), c = x.size(-1), s = positions(x, c);
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(c, 1));
  at::parallel_for(0, n * s, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) body(i / s, i % s);
  });
}

// body(n, p, acc) for each position p of each sample n, acc the float partial sums
// (`count` arrays of C) of p's block of kSumBlock positions; then done(n, totals) with the
// double totals of sample n (`count` arrays of C): the blocks' sums added in block order.
// Blocks, not samples, are the parallel tasks (a batch of one uses every thread), and the
// blocks and the order of every sum are fixed: the same result for any thread count.
template <typename T, typename F, typename G>
void for_samples_summing(const at::Tensor& x, int64_t count, const F& body, const G& done) {
  const int64_t n = x.size(0), c = x.size(-1), s = positions(x, c);
  const int64_t blocks = (s + kSumBlock - 1) / kSumBlock, width = count * c;
  std::vector<T> partial(static_cast<size_t>(n * blocks * width));  // zeroed
  at::parallel_for(0, n * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t i = t / blocks, start = (t % blocks) * kSumBlock;
      T* acc = partial.data() + t * width;
      for (int64_t p = start; p < std::min(s, start + kSumBlock); ++p) body(i, p, acc);
    }
  });
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> totals(static_cast<size_t>(width));
    for (int64_t i = begin; i < end; ++i) {
      std::fill(totals.begin(), totals.end(), 0.0);
      const T* block = partial.data() + i * blocks * width;
      for (int64_t b = 0; b < blocks; ++b, block += width)
        for (int64_t k = 0; k < width; ++k) totals[k] += block[k];
      done(i, totals.data());
    }
  });
}

// (N, C) tables of p2, dp = p1 - p2 and β·dp.
template <typename T>
at::Tensor acon_tables(const at::Tensor& x, const at::Tensor& p1, const at::Tensor& p2,
                       const at::Tensor& beta) {
  const Coeff<T> c1(p1), c2(p2), cb(beta);
  return coefficient_tables<T>(x, 3, [&](const Row& row, int64_t j) {
    const T dp = c1(row) - c2(row);
    return j == 0 ? c2(row) : (j == 1 ? dp : cb(row) * dp);
  });
}

template <typename T>
void acon_forward_nsc(const at::Tensor& x, const at::Tensor& p1, const at::Tensor& p2,
                      const at::Tensor& beta, at::Tensor& y) {
  using V = typename Pack<T>::V;
  const int64_t c = x.size(-1), s = positions(x, c);
  const at::Tensor tables = acon_tables<T>(x, p1, p2, beta);
  const T* tab = tables.const_data_ptr<T>();
  const int64_t table = x.size(0) * c;
  const T* xp = x.const_data_ptr<T>();
  T* yp = y.mutable_data_ptr<T>();
  for_positions(x, [&](int64_t n, int64_t p) {
    const T *xr = xp + (n * s + p) * c, *q2 = tab + n * c, *dp = q2 + table, *bdp = dp + table;
    T* yr = yp + (n * s + p) * c;
    for_packs<T>(c, [&](int64_t i, auto lanes) INLINE {
      store(yr + i, acon_pack(load<V>(xr + i, lanes), load<V>(q2 + i, lanes),
                              load<V>(dp + i, lanes), load<V>(bdp + i, lanes)), lanes);
    });
  });
}

template <typename T>
void acon_backward_nsc(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& p1,
                       const at::Tensor& p2, const at::Tensor& beta, at::Tensor& gx,
                       at::Tensor& g_p1, at::Tensor& g_p2, at::Tensor& g_beta) {
  using V = typename Pack<T>::V;
  const int64_t c = x.size(-1), s = positions(x, c);
  const at::Tensor tables = acon_tables<T>(x, p1, p2, beta);
  const T* tab = tables.const_data_ptr<T>();
  const int64_t table = x.size(0) * c;
  const T *xp = x.const_data_ptr<T>(), *gp = grad.const_data_ptr<T>();
  T *gxp = gx.mutable_data_ptr<T>(), *o1 = g_p1.mutable_data_ptr<T>(),
    *o2 = g_p2.mutable_data_ptr<T>(), *ob = g_beta.mutable_data_ptr<T>();
  for_samples_summing<T>(
      x, 3,
      [&](int64_t n, int64_t p, T* acc) {
        const int64_t at = (n * s + p) * c;
        const T *xr = xp + at, *gr = gp + at, *q2 = tab + n * c, *dp = q2 + table,
                *bdp = dp + table;
        T* gxr = gxp + at;
        for_packs<T>(c, [&](int64_t i, auto lanes) INLINE {
          V sums[3] = {load<V>(acc + i, lanes), load<V>(acc + c + i, lanes),
                       load<V>(acc + 2 * c + i, lanes)};
          store(gxr + i,
                acon_grad_pack(load<V>(xr + i, lanes), load<V>(gr + i, lanes),
                               load<V>(q2 + i, lanes), load<V>(dp + i, lanes),
                               load<V>(bdp + i, lanes), sums[0], sums[1], sums[2]),
                lanes);
          for (int j = 0; j < 3; ++j) store(acc + j * c + i, sums[j], lanes);
        });
      },
      [&](int64_t n, const double* totals) {
        const T* dp = tab + table + n * c;
        for (int64_t k = 0; k < c; ++k) {
          o1[n * c + k] = static_cast<T>(totals[k]);
          o2[n * c + k] = static_cast<T>(totals[c + k]);
          ob[n * c + k] = static_cast<T>(totals[2 * c + k]) * (dp[k] * dp[k]);
        }
      });
}

// (N, C) tables of a0, b0, da = a1 - a0 and db = b1 - b0.
template <typename T>
at::Tensor max2_tables(const at::Tensor& x, const at::Tensor& a, const at::Tensor& b) {
  const Coeff<T> ca(a), cb(b);
  return coefficient_tables<T>(x, 4, [&](const Row& row, int64_t j) {
    switch (j) {
      case 0: return ca(row, 0);
      case 1: return cb(row, 0);
      case 2: return ca(row, 1) - ca(row, 0);
      default: return cb(row, 1) - cb(row, 0);
    }
  });
}

template <typename T>
void max2_forward_nsc(const at::Tensor& x, const at::Tensor& a, const at::Tensor& b,
                      const std::optional<at::Tensor>& scale, at::Tensor& y) {
  using V = typename Pack<T>::V;
  const int64_t c = x.size(-1), s = positions(x, c);
  const at::Tensor tables = max2_tables<T>(x, a, b);
  const T* tab = tables.const_data_ptr<T>();
  const int64_t table = x.size(0) * c;
  const T* xp = x.const_data_ptr<T>();
  const T* sp = scale ? scale->const_data_ptr<T>() : nullptr;
  T* yp = y.mutable_data_ptr<T>();
  for_positions(x, [&](int64_t n, int64_t p) {
    const T *xr = xp + (n * s + p) * c, *a0 = tab + n * c, *b0 = a0 + table,
            *da = b0 + table, *db = da + table;
    const T sc = sp ? sp[n * s + p] : T(1);
    T* yr = yp + (n * s + p) * c;
    for_packs<T>(c, [&](int64_t i, auto lanes) INLINE {
      store(yr + i, sc * max2_pack(load<V>(xr + i, lanes), load<V>(a0 + i, lanes),
                                   load<V>(b0 + i, lanes), load<V>(da + i, lanes),
                                   load<V>(db + i, lanes)), lanes);
    });
  });
}

template <typename T>
void max2_backward_nsc(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& a,
                       const at::Tensor& b, const std::optional<at::Tensor>& scale,
                       at::Tensor& gx, at::Tensor& g_a, at::Tensor& g_b, at::Tensor& g_scale) {
  using V = typename Pack<T>::V;
  const int64_t c = x.size(-1), s = positions(x, c);
  const at::Tensor tables = max2_tables<T>(x, a, b);
  const T* tab = tables.const_data_ptr<T>();
  const int64_t table = x.size(0) * c;
  const T *xp = x.const_data_ptr<T>(), *gp = grad.const_data_ptr<T>();
  const T* sp = scale ? scale->const_data_ptr<T>() : nullptr;
  T *gxp = gx.mutable_data_ptr<T>(), *oa = g_a.mutable_data_ptr<T>(),
    *ob = g_b.mutable_data_ptr<T>();
  T* gsp = scale ? g_scale.mutable_data_ptr<T>() : nullptr;
  for_samples_summing<T>(
      x, 4,
      [&](int64_t n, int64_t p, T* acc) {
        const int64_t at = (n * s + p) * c;
        const T *xr = xp + at, *gr = gp + at, *a0 = tab + n * c, *b0 = a0 + table,
                *da = b0 + table, *db = da + table;
        const T sc = sp ? sp[n * s + p] : T(1);
        T* gxr = gxp + at;
        V scale_grad{};
        for_packs<T>(c, [&](int64_t i, auto lanes) INLINE {
          const V xv = load<V>(xr + i, lanes), g = load<V>(gr + i, lanes);
          const V a0v = load<V>(a0 + i, lanes), dav = load<V>(da + i, lanes),
                  dbv = load<V>(db + i, lanes);
          if (gsp) scale_grad += max2_pack(xv, a0v, load<V>(b0 + i, lanes), dav, dbv) * g;
          V sums[4];
          for (int j = 0; j < 4; ++j) sums[j] = load<V>(acc + j * c + i, lanes);
          store(gxr + i,
                max2_grad_pack(xv, sc * g, a0v, dav, dbv, sums[0], sums[1], sums[2], sums[3]),
                lanes);
          for (int j = 0; j < 4; ++j) store(acc + j * c + i, sums[j], lanes);
        });
        if (gsp) gsp[n * s + p] = lane_sum(scale_grad);
      },
      [&](int64_t n, const double* totals) {
        for (int64_t k = 0; k < c; ++k) {
          const int64_t row = n * c + k;
          oa[2 * row] = static_cast<T>(totals[k]);
          oa[2 * row + 1] = static_cast<T>(totals[c + k]);
          ob[2 * row] = static_cast<T>(totals[2 * c + k]);
          ob[2 * row + 1] = static_cast<T>(totals[3 * c + k]);
        }
      });
}

}  // namespace revact_kernels::REVACT_ISA
