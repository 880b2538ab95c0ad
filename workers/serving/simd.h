/* Vector types and math for the packed kernel (packed_kernels.c): AVX-512 or AVX2 + FMA where the CPU has them
 * (the kernel is built with -march=native), scalar code otherwise (LANES undefined). */
#pragma once

#if defined(__AVX512F__)
#include <immintrin.h>
#define PACKED_SIMD "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PACKED_SIMD "avx2"
#else
#define PACKED_SIMD "scalar"
#endif

#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define vload _mm512_loadu_ps
#define vzero _mm512_setzero_ps
#define vfma _mm512_fmadd_ps
#define vadd _mm512_add_ps
#define vsum _mm512_reduce_add_ps
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 vec;
#define LANES 8
#define vload _mm256_loadu_ps
#define vzero _mm256_setzero_ps
#define vfma _mm256_fmadd_ps
#define vadd _mm256_add_ps
static inline float vsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

#ifdef LANES
/* e^x in every lane (Cephes' expf: x = n ln2 + r, a degree-6 polynomial for e^r, times 2^n), within 2 ulp of
 * expf. A step of 8 rows takes ~370,000 for SwiGLU alone: one at a time through libm's expf that was 0.8-0.9 ms of a
 * ~28 ms step, 0.2-0.3 ms now (timed in the engine, quiet machine). Lanes below -87.3 (the masked scores' -inf among
 * them) give exactly 0. */
#if defined(__AVX512F__)
#define vset1 _mm512_set1_ps
#define vmul _mm512_mul_ps
#define vsub _mm512_sub_ps
#define vdiv _mm512_div_ps
#define vmin _mm512_min_ps
#define vmax _mm512_max_ps
#define vstore _mm512_storeu_ps
static inline vec vpow2i(vec n) { /* 2^n for integral n in [-126, 127] */
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
static inline vec vround(vec x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vec vzero_below(vec x, vec limit, vec value) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, limit, _CMP_GE_OQ), value);
}
#else
#define vset1 _mm256_set1_ps
#define vmul _mm256_mul_ps
#define vsub _mm256_sub_ps
#define vdiv _mm256_div_ps
#define vmin _mm256_min_ps
#define vmax _mm256_max_ps
#define vstore _mm256_storeu_ps
static inline vec vpow2i(vec n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
static inline vec vround(vec x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vec vzero_below(vec x, vec limit, vec value) {
    return _mm256_and_ps(_mm256_cmp_ps(x, limit, _CMP_GE_OQ), value);
}
#endif

static inline vec vexp(vec x) {
    const vec low = vset1(-87.3f); /* 2^n stays a normal float */
    const vec clamped = vmax(vmin(x, vset1(88.0f)), low);
    const vec n = vround(vmul(clamped, vset1(1.44269504088896341f)));
    vec r = vfma(n, vset1(-0.693359375f), clamped);
    r = vfma(n, vset1(2.12194440e-4f), r);
    vec p = vset1(1.9875691500e-4f);
    p = vfma(p, r, vset1(1.3981999507e-3f));
    p = vfma(p, r, vset1(8.3334519073e-3f));
    p = vfma(p, r, vset1(4.1665795894e-2f));
    p = vfma(p, r, vset1(1.6666665459e-1f));
    p = vfma(p, r, vset1(5.0000001201e-1f));
    const vec y = vadd(vfma(vmul(p, r), r, r), vset1(1.0f));
    return vzero_below(x, low, vmul(y, vpow2i(n)));
}
#endif
