/* Linear layers over block-quantized weights, for decode steps of a few rows.
 *
 * A decode step reads every weight once per token: with fp32 weights that is ~540 MB for SmolLM2-135M,
 * and the step is bound by memory bandwidth, not arithmetic. The bundled model comes from a GGUF whose
 * weights are 4-bit (Q4_1) and 8-bit (Q8_0) blocks of 32; kept in that form the step reads ~110 MB.
 * Each block is expanded to fp32 in registers (w = d * q + m, the same arithmetic that de-quantized the
 * GGUF, so the weights are bit-identical to the fp32 copy) and multiplied with every row at once.
 *
 * q4: qs [out, in / 2] (block b of row o: 16 bytes, byte j = q[j] | q[j + 16] << 4), d, m [out, in / 32]
 * q8: qs [out, in] int8, d [out, in / 32]
 * x [rows, in], y [rows, out]; in % 32 == 0. Built with -ffp-contract=off: w = d * q + m rounds twice,
 * as it did when the weights were de-quantized.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "simd.h"

#define MAX_GROUP 8

#include "thread_pool.h"

const char *packed_simd(void) { return PACKED_SIMD; }

/* Expand one block of 32 weights into w[32]. */
static inline void expand_q4(const uint8_t *qs, float d, float m, float *w) {
    for (int j = 0; j < 16; j++) {
        w[j] = (float)(qs[j] & 0x0F) * d + m;
        w[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

static inline void expand_q8(const int8_t *qs, float d, float *w) {
    for (int j = 0; j < 32; j++) w[j] = (float)qs[j] * d;
}

#ifdef LANES
#define BLOCK_VECS (32 / LANES)

/* Block b's weights as BLOCK_VECS vectors, expanded in registers. */
static inline __attribute__((always_inline)) void expand_block(int kind, const uint8_t *qs, const float *d,
                                                               const float *m, int b, vec *w) {
#if defined(__AVX512F__)
    const __m512 dv = _mm512_set1_ps(d[b]);
    if (kind == 4) {
        const __m128i bytes = _mm_loadu_si128((const __m128i *)(qs + (size_t)b * 16));
        const __m128i low = _mm_set1_epi8(0x0F);
        const __m512 mv = _mm512_set1_ps(m[b]);
        w[0] = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(bytes, low))), dv), mv);
        w[1] = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(
            _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(bytes, 4), low))), dv), mv);
    } else {
        const int8_t *q = (const int8_t *)qs + (size_t)b * 32;
        w[0] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q))), dv);
        w[1] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + 16)))), dv);
    }
#else
    const __m256 dv = _mm256_set1_ps(d[b]);
    if (kind == 4) {
        const __m128i bytes = _mm_loadu_si128((const __m128i *)(qs + (size_t)b * 16));
        const __m128i low = _mm_set1_epi8(0x0F);
        const __m128i lo = _mm_and_si128(bytes, low), hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low);
        const __m256 mv = _mm256_set1_ps(m[b]);
        const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int v = 0; v < 4; v++)
            w[v] = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[v])), dv), mv);
    } else {
        const int8_t *q = (const int8_t *)qs + (size_t)b * 32;
        for (int v = 0; v < 4; v++)
            w[v] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8 * v)))), dv);
    }
#endif
}

/* One output of `group` rows: expand each block once, then one FMA per row and vector. The group is a
 * compile-time constant at each call site below, so the accumulators stay in registers. Each row keeps one
 * accumulator per vector of a block, and for one or two rows two blocks go side by side, so that FMAs do
 * not wait on each other's latency (measured: 5-8% faster than one chain per row). */
static inline __attribute__((always_inline)) void dot_rows(int kind, const uint8_t *qs, const float *d,
                                                           const float *m, const float *x, int in, int blocks,
                                                           int group, float *out, int stride) {
    enum { MAX_SIDE = 2 };
    const int side = group <= 2 ? MAX_SIDE : 1;
    vec acc[MAX_GROUP][MAX_SIDE][BLOCK_VECS];
    for (int r = 0; r < group; r++)
        for (int u = 0; u < side; u++)
            for (int v = 0; v < BLOCK_VECS; v++) acc[r][u][v] = vzero();
    int b = 0;
    for (; b + side <= blocks; b += side)
        for (int u = 0; u < side; u++) {
            vec w[BLOCK_VECS];
            expand_block(kind, qs, d, m, b + u, w);
            for (int v = 0; v < BLOCK_VECS; v++)
                for (int r = 0; r < group; r++)
                    acc[r][u][v] = vfma(w[v], vload(x + (size_t)r * in + (b + u) * 32 + v * LANES), acc[r][u][v]);
        }
    for (; b < blocks; b++) {
        vec w[BLOCK_VECS];
        expand_block(kind, qs, d, m, b, w);
        for (int v = 0; v < BLOCK_VECS; v++)
            for (int r = 0; r < group; r++)
                acc[r][0][v] = vfma(w[v], vload(x + (size_t)r * in + b * 32 + v * LANES), acc[r][0][v]);
    }
    for (int r = 0; r < group; r++) {
        vec total = acc[r][0][0];
        for (int u = 0; u < side; u++)
            for (int v = (u == 0); v < BLOCK_VECS; v++) total = vadd(total, acc[r][u][v]);
        out[(size_t)r * stride] = vsum(total);
    }
}
#else
static inline void dot_rows(int kind, const uint8_t *qs, const float *d, const float *m, const float *x, int in,
                            int blocks, int group, float *out, int stride) {
    float w[32];
    float acc[MAX_GROUP] = {0};
    for (int b = 0; b < blocks; b++) {
        if (kind == 4) expand_q4(qs + (size_t)b * 16, d[b], m[b], w);
        else expand_q8((const int8_t *)qs + (size_t)b * 32, d[b], w);
        for (int r = 0; r < group; r++) {
            const float *xr = x + (size_t)r * in + b * 32;
            float s = 0.0f;
            for (int j = 0; j < 32; j++) s += w[j] * xr[j];
            acc[r] += s;
        }
    }
    for (int r = 0; r < group; r++) out[(size_t)r * stride] = acc[r];
}
#endif

#define DISPATCH(G)                                                              \
    case G:                                                                      \
        if (kind == 4) {                                                         \
            dot_rows(4, row_qs, row_d, row_m, xg, in, blocks, G, yg + o, out);   \
        } else {                                                                 \
            dot_rows(8, row_qs, row_d, row_m, xg, in, blocks, G, yg + o, out);   \
        }                                                                        \
        break;

typedef struct {
    int kind;
    const uint8_t *qs;
    const float *d, *m, *x;
    float *y;
    int rows, in, out;
} linear_task;

/* Outputs [begin, end) of every row. */
static void linear_part(void *context, int begin, int end) {
    const linear_task *t = context;
    const int kind = t->kind, in = t->in, out = t->out, blocks = in / 32;
    const size_t row_bytes = kind == 4 ? (size_t)in / 2 : (size_t)in;
    for (int first = 0; first < t->rows; first += MAX_GROUP) {
        const int group = t->rows - first < MAX_GROUP ? t->rows - first : MAX_GROUP;
        const float *xg = t->x + (size_t)first * in;
        float *yg = t->y + (size_t)first * out;
        for (int o = begin; o < end; o++) {
            const uint8_t *row_qs = t->qs + (size_t)o * row_bytes;
            const float *row_d = t->d + (size_t)o * blocks;
            const float *row_m = t->m ? t->m + (size_t)o * blocks : 0;
            switch (group) {
                DISPATCH(1) DISPATCH(2) DISPATCH(3) DISPATCH(4) DISPATCH(5) DISPATCH(6) DISPATCH(7) DISPATCH(8)
            }
        }
    }
}

static void packed_linear(int kind, const uint8_t *qs, const float *d, const float *m, const float *x, float *y,
                          int rows, int in, int out, int threads) {
    linear_task task = {kind, qs, d, m, x, y, rows, in, out};
    pool_run(linear_part, &task, out, threads);
}

void q4_linear(const uint8_t *qs, const float *d, const float *m, const float *x, float *y, int rows, int in,
               int out, int threads) {
    packed_linear(4, qs, d, m, x, y, rows, in, out, threads);
}

void q8_linear(const int8_t *qs, const float *d, const float *x, float *y, int rows, int in, int out, int threads) {
    packed_linear(8, (const uint8_t *)qs, d, 0, x, y, rows, in, out, threads);
}

/* --- decode steps (and short prefills) of a Llama-family model, all layers in one call -------------------------
 *
 * Through transformers, a decode step of SmolLM2's 30 layers is ~750 small torch operations and the Python
 * around them: ~27 ms a token here against ~14 ms for the packed matrix products themselves. This runs the
 * same arithmetic in one call: RMSNorm, q/k/v, rotary (cos/sin computed by the model's own rotary module),
 * the new key and value written into the running batch's KV slabs, attention over the columns each row's
 * mask keeps, o, RMSNorm, SwiGLU, and the final norm and output layer.
 */

typedef struct {
    const uint8_t *levels;
    const float *scales;
    const float *minimums; /* 0 for 8-bit */
    int in, out;
    /* The LoRA bank's stacked adapters on this projection, or rank 0: A [slots, rank, in], B [slots, out, rank]
     * (B already scaled); row r adds B[s] @ (A[s] @ x[r]) with s = the step's slots[r]. */
    const float *lora_a, *lora_b;
    int rank;
} packed_weight;

typedef struct {
    packed_weight q, k, v, o, gate, up, down;
    const float *attn_norm, *mlp_norm;
    float *key_slab, *value_slab; /* [rows, kv_heads, capacity, head_dim] */
    int capacity;
} llama_layer;

typedef struct {
    int layers, hidden, heads, kv_heads, head_dim, intermediate, vocab;
    float eps;
    const float *final_norm;
    packed_weight head;
    llama_layer *layer;
    const int64_t *slots; /* per row: its adapter's slot in the stacks, or base_slot (none); 0 without adapters */
    int base_slot;
} llama_model;

static inline float dot(const float *a, const float *b, int n);

static void linear(const llama_model *M, const packed_weight *w, const float *x, float *y, int rows, int threads) {
    packed_linear(w->minimums ? 4 : 8, w->levels, w->scales, w->minimums, x, y, rows, w->in, w->out, threads);
    if (!w->rank || !M->slots) return;
    float hidden[w->rank];
    for (int r = 0; r < rows; r++) {
        const int64_t slot = M->slots[r];
        if (slot == M->base_slot) continue;
        const float *a = w->lora_a + (size_t)slot * w->rank * w->in, *b = w->lora_b + (size_t)slot * w->out * w->rank;
        const float *xr = x + (size_t)r * w->in;
        for (int k = 0; k < w->rank; k++) hidden[k] = dot(a + (size_t)k * w->in, xr, w->in);
        float *yr = y + (size_t)r * w->out;
        for (int o = 0; o < w->out; o++) yr[o] += dot(b + (size_t)o * w->rank, hidden, w->rank);
    }
}

/* A dot product of n floats, vectorized where n allows (the compiler may not reorder a float sum itself). */
static inline float dot(const float *a, const float *b, int n) {
#ifdef LANES
    if (n % LANES == 0) {
        vec acc = vzero();
        for (int i = 0; i < n; i += LANES) acc = vfma(vload(a + i), vload(b + i), acc);
        return vsum(acc);
    }
#endif
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

static void rms_norm(const float *x, const float *weight, float *y, int rows, int n, float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        const float sum = dot(xr, xr, n);
        const float inv = 1.0f / sqrtf(sum / n + eps);
        for (int i = 0; i < n; i++) y[(size_t)r * n + i] = weight[i] * (xr[i] * inv);
    }
}

/* x[r, head, :] rotated in place: x * cos + rotate_half(x) * sin. */
static void rotate(float *x, int rows, int heads, int head_dim, const float *cos, const float *sin) {
    const int half = head_dim / 2;
    for (int r = 0; r < rows; r++)
        for (int h = 0; h < heads; h++) {
            float *v = x + ((size_t)r * heads + h) * head_dim;
            const float *c = cos + (size_t)r * head_dim, *s = sin + (size_t)r * head_dim;
            for (int i = 0; i < half; i++) {
                const float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i + half] + a * s[i + half];
            }
        }
}

typedef struct {
    float *gate;
    const float *up;
} swiglu_task;

/* gate = silu(gate) * up over [begin, end): the step's only transcendental work that grows with the rows. */
static void swiglu_part(void *context, int begin, int end) {
    const swiglu_task *t = context;
    int i = begin;
#ifdef LANES
    const vec one = vset1(1.0f);
    for (; i + LANES <= end; i += LANES) {
        const vec g = vload(t->gate + i);
        vstore(t->gate + i, vmul(vdiv(g, vadd(one, vexp(vsub(vzero(), g)))), vload(t->up + i)));
    }
#endif
    for (; i < end; i++) t->gate[i] = t->gate[i] / (1.0f + expf(-t->gate[i])) * t->up[i];
}

typedef struct {
    const float *q, *key_slab, *value_slab;
    const int64_t *mask, *slab_row, *column;
    float *scores, *attended;
    int heads, kv_heads, head_dim, capacity, stride;
    float scale;
} attention_task;

/* Attention of (item, key/value head) pairs [begin, end): item i's query heads that share that key/value head
 * (grouped-query attention) attend together to the columns up to its own, column[i], of its slab row that its
 * mask row keeps, so each key and value is read once for all of them. */
static void attention_part(void *context, int begin, int end) {
    const attention_task *t = context;
    const int nh = t->heads, nkv = t->kv_heads, hd = t->head_dim, group = nh / nkv;
    float best[group], total[group];
    for (int ik = begin; ik < end; ik++) {
        const int i = ik / nkv, kh = ik % nkv, h0 = kh * group, columns = (int)t->column[i] + 1;
        const size_t base = ((size_t)t->slab_row[i] * nkv + kh) * t->capacity * hd;
        const float *keys = t->key_slab + base, *values = t->value_slab + base;
        const int64_t *keep = t->mask + (size_t)i * t->stride;
        const float *q0 = t->q + ((size_t)i * nh + h0) * hd;
        float *s0 = t->scores + ((size_t)i * nh + h0) * t->stride;
        for (int g = 0; g < group; g++) best[g] = -INFINITY;
        for (int j = 0; j < columns; j++) {
            if (!keep[j]) {
                for (int g = 0; g < group; g++) s0[(size_t)g * t->stride + j] = -INFINITY;
                continue;
            }
            const float *key = keys + (size_t)j * hd;
            for (int g = 0; g < group; g++) {
                const float score = dot(q0 + (size_t)g * hd, key, hd) * t->scale;
                s0[(size_t)g * t->stride + j] = score;
                if (score > best[g]) best[g] = score;
            }
        }
        for (int g = 0; g < group; g++) {
            float *s = s0 + (size_t)g * t->stride, sum = 0.0f; /* masked columns hold -inf, whose exponential is 0 */
            int j = 0;
#ifdef LANES
            vec partial = vzero();
            for (; j + LANES <= columns; j += LANES) {
                const vec e = vexp(vsub(vload(s + j), vset1(best[g])));
                vstore(s + j, e);
                partial = vadd(partial, e);
            }
            sum = vsum(partial);
#endif
            for (; j < columns; j++) {
                s[j] = keep[j] ? expf(s[j] - best[g]) : 0.0f;
                sum += s[j];
            }
            total[g] = sum;
        }
        float *out0 = t->attended + ((size_t)i * nh + h0) * hd;
        for (int d = 0; d < group * hd; d++) out0[d] = 0.0f;
        for (int j = 0; j < columns; j++) {
            const float *value = values + (size_t)j * hd;
            for (int g = 0; g < group; g++) {
                const float e = s0[(size_t)g * t->stride + j];
                if (e == 0.0f) continue;
                const float p = e / total[g];
                float *out = out0 + (size_t)g * hd;
                for (int d = 0; d < hd; d++) out[d] += p * value[d];
            }
        }
    }
}

/* Runs `items` tokens through the model; returns 0, or -1 when out of memory. Item i is a token of the running
 * batch's slab row slab_row[i]: `x` [items, hidden] holds the embedded tokens, cos/sin their rotary angles;
 * its key and value are written at column[i] of that row, and it attends to the columns up to there that
 * mask row i ([items, stride]) keeps. A decode step is one item per row at the same column; a prefill of
 * several tokens of a row is one item per token, at successive columns (each sees the ones before it: every
 * item's key and value are written before any attends). Logits [outputs, vocab] of the items in
 * output_item. */
int llama_forward(const llama_model *M, int items, float *x, const float *cos, const float *sin,
                  const int64_t *slab_row, const int64_t *column, const int64_t *mask, int stride,
                  int outputs, const int64_t *output_item, float *logits, int threads) {
    const int H = M->hidden, hd = M->head_dim, nh = M->heads, nkv = M->kv_heads, I = M->intermediate;
    const float scale = 1.0f / sqrtf((float)hd);
    float *normed = malloc(sizeof(float) * items * H), *q = malloc(sizeof(float) * items * nh * hd);
    float *k = malloc(sizeof(float) * items * nkv * hd), *v = malloc(sizeof(float) * items * nkv * hd);
    float *attended = malloc(sizeof(float) * items * nh * hd), *projected = malloc(sizeof(float) * items * H);
    float *gate = malloc(sizeof(float) * items * I), *up = malloc(sizeof(float) * items * I);
    float *scores = malloc(sizeof(float) * items * nh * stride), *last = malloc(sizeof(float) * outputs * H);
    int status = 0;
    if (!normed || !q || !k || !v || !attended || !projected || !gate || !up || !scores || !last) {
        status = -1;
        goto done;
    }
    for (int l = 0; l < M->layers; l++) {
        const llama_layer *L = &M->layer[l];
        const int capacity = L->capacity;
        rms_norm(x, L->attn_norm, normed, items, H, M->eps);
        linear(M, &L->q, normed, q, items, threads);
        linear(M, &L->k, normed, k, items, threads);
        linear(M, &L->v, normed, v, items, threads);
        rotate(q, items, nh, hd, cos, sin);
        rotate(k, items, nkv, hd, cos, sin);
        for (int i = 0; i < items; i++)
            for (int h = 0; h < nkv; h++) {
                const size_t at = (((size_t)slab_row[i] * nkv + h) * capacity + column[i]) * hd;
                memcpy(L->key_slab + at, k + ((size_t)i * nkv + h) * hd, sizeof(float) * hd);
                memcpy(L->value_slab + at, v + ((size_t)i * nkv + h) * hd, sizeof(float) * hd);
            }
        attention_task task = {q, L->key_slab, L->value_slab, mask, slab_row, column, scores, attended, nh, nkv, hd,
                               capacity, stride, scale};
        pool_run(attention_part, &task, items * nkv, threads);
        linear(M, &L->o, attended, projected, items, threads);
        for (size_t i = 0; i < (size_t)items * H; i++) x[i] += projected[i];
        rms_norm(x, L->mlp_norm, normed, items, H, M->eps);
        linear(M, &L->gate, normed, gate, items, threads);
        linear(M, &L->up, normed, up, items, threads);
        swiglu_task activation = {gate, up};
        pool_run(swiglu_part, &activation, items * I, threads);
        linear(M, &L->down, gate, projected, items, threads);
        for (size_t i = 0; i < (size_t)items * H; i++) x[i] += projected[i];
    }
    for (int o = 0; o < outputs; o++) memcpy(last + (size_t)o * H, x + (size_t)output_item[o] * H, sizeof(float) * H);
    rms_norm(last, M->final_norm, normed, outputs, H, M->eps);
    linear(M, &M->head, normed, logits, outputs, threads); /* never with LoRA rows: `takes` refuses those */
done:
    free(normed); free(q); free(k); free(v); free(attended); free(projected); free(gate); free(up); free(scores);
    free(last);
    return status;
}
