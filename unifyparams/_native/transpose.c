/*
 * unifyparams._transpose: a transposing copy of 4-byte elements at close to memory speed.
 *
 * NumPy copies a transposed array one element at a time, reading one array with a large stride;
 * cache-sized tiles (unifyparams.copying) lift that to a third of a plain copy, and no further:
 * NumPy's strided loop does one element per step, and at power-of-two row lengths the strided
 * rows fall into the same cache sets. Here each 16 x 16 block is moved with AVX2 registers: it
 * reads 16 whole cache lines of the source and writes 16 whole lines of the destination, so every
 * line is used completely while it is in the cache.
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

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define UP_AVX2 1
#include <immintrin.h>
#else
#define UP_AVX2 0
#endif

/* Tiles of TILE x TILE elements (16 KiB each side): the blocks of one tile reuse its source and
   destination pages, which stay in the TLB. */
#define TILE 64

static void transpose_scalar(const uint32_t *src, ptrdiff_t ss, uint32_t *dst, ptrdiff_t ds,
                             size_t rows, size_t cols) {
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            dst[(ptrdiff_t)i * ds + (ptrdiff_t)j] = src[(ptrdiff_t)j * ss + (ptrdiff_t)i];
}

#if UP_AVX2
/* dst[r][c] = src[c][r] for an 8 x 8 block. */
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

__attribute__((target("avx2"))) static void transpose_avx2(const uint32_t *src, ptrdiff_t ss, uint32_t *dst,
                                                           ptrdiff_t ds, size_t rows, size_t cols) {
    /* Bits are moved, never interpreted as floats: any 4-byte element is copied exactly. */
    const float *s = (const float *)src;
    float *d = (float *)dst;
    size_t rows16 = rows - rows % 16, cols16 = cols - cols % 16;
    for (size_t i0 = 0; i0 < rows16; i0 += TILE) {
        size_t i1 = i0 + TILE < rows16 ? i0 + TILE : rows16;
        for (size_t j0 = 0; j0 < cols16; j0 += TILE) {
            size_t j1 = j0 + TILE < cols16 ? j0 + TILE : cols16;
            for (size_t i = i0; i < i1; i += 16)
                for (size_t j = j0; j < j1; j += 16) {
                    const float *b = s + (ptrdiff_t)j * ss + (ptrdiff_t)i;
                    float *o = d + (ptrdiff_t)i * ds + (ptrdiff_t)j;
                    block8(b, ss, o, ds);
                    block8(b + 8, ss, o + 8 * ds, ds);
                    block8(b + 8 * ss, ss, o + 8, ds);
                    block8(b + 8 * ss + 8, ss, o + 8 * ds + 8, ds);
                }
        }
    }
    if (cols16 < cols)  /* the last columns of every row */
        transpose_scalar(src + (ptrdiff_t)cols16 * ss, ss, dst + cols16, ds, rows, cols - cols16);
    if (rows16 < rows)  /* the last rows, up to the columns above */
        transpose_scalar(src + rows16, ss, dst + (ptrdiff_t)rows16 * ds, ds, rows - rows16, cols16);
}
#endif

/* 1 when up_transpose32 runs the AVX2 kernel on this CPU, else 0 (the caller then uses NumPy). */
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
        transpose_avx2((const uint32_t *)src, ss, (uint32_t *)dst, ds, rows, cols);
        return;
    }
#endif
    transpose_scalar((const uint32_t *)src, ss, (uint32_t *)dst, ds, rows, cols);
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_transpose",
                                    "A transposing copy of 4-byte elements (loaded with ctypes).", -1, NULL};

PyMODINIT_FUNC PyInit__transpose(void) { return PyModule_Create(&module); }
