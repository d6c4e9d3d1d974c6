/*
 * unifyparams._transpose: a transposing copy of 4-byte and 2-byte elements at close to memory speed.
 *
 * NumPy copies a transposed array one element at a time, reading one array with a large stride;
 * cache-sized tiles (unifyparams.copying) lift that to a third of a plain copy, and no further:
 * NumPy's strided loop does one element per step, and at power-of-two row lengths the strided
 * rows fall into the same cache sets. Here each 16 x 16 block (4-byte elements; 32 x 32 of 2-byte
 * ones) is moved with AVX2 registers: it reads 16 (32) whole cache lines of the source and writes as
 * many whole lines of the destination, so every line is used completely while it is in the cache.
 *
 * The entry points take raw addresses and strides (in elements) and no Python objects: the module
 * is loaded with ctypes, whose calls release the GIL, so several threads copy at once. It is built
 * when a C compiler is there (setup.py marks it optional); without it, or on a CPU without AVX2,
 * up_transpose32_available() says so and unifyparams copies with NumPy.
 */
#define Py_LIMITED_API 0x030A0000
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

/* UP_GENERIC (-DUP_GENERIC) builds the portable element-by-element path alone, as on other CPUs. */
#if !defined(UP_GENERIC) && (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define UP_AVX2 1
#include <immintrin.h>
#else
#define UP_AVX2 0
#endif

/* Tiles of TILE x TILE elements (256 KiB a side for 4-byte elements, in a core's L2 cache): the
   blocks of one tile reuse its pages. Measured here over 256 MiB of float32 matrices of 1024 to
   4096 a side: 256 beats 64 by about a fifth, 32 and 1024 are slower; with the next tile
   prefetched (below), 256 beats 128 and 512 by a third. */
#define TILE 256

/* dst[i * ds + j] = src[j * ss + i], one element at a time: the edges, and CPUs without AVX2. */
#define DEFINE_SCALAR(name, T)                                                                        \
    static void name(const T *src, ptrdiff_t ss, T *dst, ptrdiff_t ds, size_t rows, size_t cols) {    \
        for (size_t i = 0; i < rows; i++)                                                             \
            for (size_t j = 0; j < cols; j++)                                                         \
                dst[(ptrdiff_t)i * ds + (ptrdiff_t)j] = src[(ptrdiff_t)j * ss + (ptrdiff_t)i];        \
    }
DEFINE_SCALAR(transpose_scalar32, uint32_t)
DEFINE_SCALAR(transpose_scalar16, uint16_t)

#if UP_AVX2
/* dst[r][c] = src[c][r] for an 8 x 8 block of 4-byte elements (moved as bits: no float arithmetic). */
__attribute__((target("avx2"))) static inline void block8(const float *s, ptrdiff_t ss, float *d, ptrdiff_t ds) {
    __m256 r0 = _mm256_loadu_ps(s + 0 * ss), r1 = _mm256_loadu_ps(s + 1 * ss);
    __m256 r2 = _mm256_loadu_ps(s + 2 * ss), r3 = _mm256_loadu_ps(s + 3 * ss);
    __m256 r4 = _mm256_loadu_ps(s + 4 * ss), r5 = _mm256_loadu_ps(s + 5 * ss);
    __m256 r6 = _mm256_loadu_ps(s + 6 * ss), r7 = _mm256_loadu_ps(s + 7 * ss);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d + 0 * ds, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + 1 * ds, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* dst[r][c] = src[c][r] for a 16 x 16 block of 2-byte elements: 16-, 32- and 64-bit interleaves
   within each 128-bit lane, then the lanes recombined. */
__attribute__((target("avx2"))) static inline void block16(const uint16_t *s, ptrdiff_t ss, uint16_t *d, ptrdiff_t ds) {
    __m256i r[16], t[16], u[16];
    for (int k = 0; k < 16; k++) r[k] = _mm256_loadu_si256((const __m256i *)(s + k * ss));
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm256_unpacklo_epi16(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_epi16(r[2 * k], r[2 * k + 1]);
    }
    for (int g = 0; g < 4; g++) { /* rows 4g .. 4g + 3 */
        __m256i *q = t + 4 * g, *o = u + 4 * g;
        o[0] = _mm256_unpacklo_epi32(q[0], q[2]);
        o[1] = _mm256_unpackhi_epi32(q[0], q[2]);
        o[2] = _mm256_unpacklo_epi32(q[1], q[3]);
        o[3] = _mm256_unpackhi_epi32(q[1], q[3]);
    }
    for (int k = 0; k < 4; k++) { /* columns 2k, 2k + 1 (and + 8 in the high lane) */
        __m256i v0 = _mm256_unpacklo_epi64(u[k], u[4 + k]), v1 = _mm256_unpackhi_epi64(u[k], u[4 + k]);
        __m256i w0 = _mm256_unpacklo_epi64(u[8 + k], u[12 + k]), w1 = _mm256_unpackhi_epi64(u[8 + k], u[12 + k]);
        _mm256_storeu_si256((__m256i *)(d + (2 * k) * ds), _mm256_permute2x128_si256(v0, w0, 0x20));
        _mm256_storeu_si256((__m256i *)(d + (2 * k + 8) * ds), _mm256_permute2x128_si256(v0, w0, 0x31));
        _mm256_storeu_si256((__m256i *)(d + (2 * k + 1) * ds), _mm256_permute2x128_si256(v1, w1, 0x20));
        _mm256_storeu_si256((__m256i *)(d + (2 * k + 9) * ds), _mm256_permute2x128_si256(v1, w1, 0x31));
    }
}

/* A block of 16 x 16 4-byte elements (64 bytes a row) as four 8 x 8 ones, and of 32 x 32 2-byte
   elements as four 16 x 16 ones: each source and destination line is completed within the block. */
__attribute__((target("avx2"))) static inline void line_block32(const uint32_t *s, ptrdiff_t ss, uint32_t *d,
                                                                ptrdiff_t ds) {
    const float *b = (const float *)s;
    float *o = (float *)d;
    block8(b, ss, o, ds);
    block8(b + 8, ss, o + 8 * ds, ds);
    block8(b + 8 * ss, ss, o + 8, ds);
    block8(b + 8 * ss + 8, ss, o + 8 * ds + 8, ds);
}

__attribute__((target("avx2"))) static inline void line_block16(const uint16_t *s, ptrdiff_t ss, uint16_t *d,
                                                                ptrdiff_t ds) {
    block16(s, ss, d, ds);
    block16(s + 16, ss, d + 16 * ds, ds);
    block16(s + 16 * ss, ss, d + 16, ds);
    block16(s + 16 * ss + 16, ss, d + 16 * ds + 16, ds);
}

/* Starts bringing `bytes` of a row into the L2 cache, for reading or for writing. The tiled copy
   below fetches the next tile's rows this way while it copies the current one: without it each
   tile's first touch of its rows waits on memory, as there are more rows (a page each, at 4 KiB a
   row) than the CPU's prefetchers follow. Measured here on 16 MiB of float32 matrices of 1000 to
   4096 a side, from a file mapping into 4 KiB pages: 1.5-1.9x, on one thread or two. */
static inline void prefetch_row(const char *row, size_t bytes, int for_writing) {
    for (size_t b = 0; b < bytes; b += 64) {
        if (for_writing) __builtin_prefetch(row + b, 1, 2);
        else __builtin_prefetch(row + b, 0, 2);
    }
}
/* The whole matrix: TILE x TILE tiles of B x B line blocks, the edges one element at a time. Each
   block also prefetches `per` rows of the next tile (B * B / TILE, so that one tile's blocks cover
   the next tile's TILE rows), the destination's for writing (prefetchw: a no-op on CPUs without it). */
#define DEFINE_TILED(name, T, B, line_block, scalar)                                                       \
    __attribute__((target("avx2,prfchw"))) static void name(const T *src, ptrdiff_t ss, T *dst, ptrdiff_t ds,     \
                                                     size_t rows, size_t cols) {                            \
        const size_t per = B * B / TILE > 0 ? B * B / TILE : 1;                                             \
        size_t rows_b = rows - rows % B, cols_b = cols - cols % B;                                          \
        for (size_t i0 = 0; i0 < rows_b; i0 += TILE)                                                        \
            for (size_t j0 = 0; j0 < cols_b; j0 += TILE) {                                                  \
                size_t i1 = i0 + TILE < rows_b ? i0 + TILE : rows_b;                                        \
                size_t j1 = j0 + TILE < cols_b ? j0 + TILE : cols_b;                                        \
                size_t n_i0 = j0 + TILE < cols_b ? i0 : i0 + TILE, n_j0 = j0 + TILE < cols_b ? j0 + TILE : 0; \
                size_t n_i1 = n_i0 + TILE < rows_b ? n_i0 + TILE : rows_b;                                  \
                size_t n_j1 = n_j0 + TILE < cols_b ? n_j0 + TILE : cols_b;                                  \
                size_t row = 0; /* of the next tile, prefetched so far */                                   \
                for (size_t i = i0; i < i1; i += B)                                                         \
                    for (size_t j = j0; j < j1; j += B) {                                                   \
                        for (size_t k = 0; k < per && n_i0 < rows_b; k++, row++) {                          \
                            if (n_j0 + row < n_j1) /* source row n_j0 + row, columns n_i0 .. n_i1 */        \
                                prefetch_row((const char *)(src + (ptrdiff_t)(n_j0 + row) * ss + (ptrdiff_t)n_i0), \
                                             (n_i1 - n_i0) * sizeof(T), 0);                                  \
                            if (n_i0 + row < n_i1) /* destination row n_i0 + row, columns n_j0 .. n_j1 */   \
                                prefetch_row((const char *)(dst + (ptrdiff_t)(n_i0 + row) * ds + (ptrdiff_t)n_j0), \
                                             (n_j1 - n_j0) * sizeof(T), 1);                                  \
                        }                                                                                   \
                        line_block(src + (ptrdiff_t)j * ss + (ptrdiff_t)i, ss, dst + (ptrdiff_t)i * ds + (ptrdiff_t)j, ds); \
                    }                                                                                       \
            }                                                                                               \
        if (cols_b < cols) /* the last columns of every row */                                              \
            scalar(src + (ptrdiff_t)cols_b * ss, ss, dst + cols_b, ds, rows, cols - cols_b);                \
        if (rows_b < rows) /* the last rows, up to the columns above */                                     \
            scalar(src + rows_b, ss, dst + (ptrdiff_t)rows_b * ds, ds, rows - rows_b, cols_b);              \
    }
DEFINE_TILED(transpose_avx2_32, uint32_t, 16, line_block32, transpose_scalar32)
DEFINE_TILED(transpose_avx2_16, uint16_t, 32, line_block16, transpose_scalar16)
#endif

/* 1 when up_transpose32 and up_transpose16 run the AVX2 kernels on this CPU, else 0 (the caller then
   uses NumPy). */
int up_transpose32_available(void) {
#if UP_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

/* dst[i * ds + j] = src[j * ss + i] for i < rows, j < cols; strides in elements of 4 bytes.
   The two ranges must not overlap. */
void up_transpose32(const void *src, ptrdiff_t ss, void *dst, ptrdiff_t ds, size_t rows, size_t cols) {
#if UP_AVX2
    if (up_transpose32_available()) {
        transpose_avx2_32((const uint32_t *)src, ss, (uint32_t *)dst, ds, rows, cols);
        return;
    }
#endif
    transpose_scalar32((const uint32_t *)src, ss, (uint32_t *)dst, ds, rows, cols);
}

/* The same for elements of 2 bytes (float16, bfloat16). */
void up_transpose16(const void *src, ptrdiff_t ss, void *dst, ptrdiff_t ds, size_t rows, size_t cols) {
#if UP_AVX2
    if (up_transpose32_available()) {
        transpose_avx2_16((const uint16_t *)src, ss, (uint16_t *)dst, ds, rows, cols);
        return;
    }
#endif
    transpose_scalar16((const uint16_t *)src, ss, (uint16_t *)dst, ds, rows, cols);
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_transpose",
    .m_doc = "A transposing copy of 4- and 2-byte elements (loaded with ctypes).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__transpose(void) { return PyModule_Create(&module); }
