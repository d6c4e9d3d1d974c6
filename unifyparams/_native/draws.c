/*
 * unifyparams._draws: uniform values from NumPy's PCG64 stream, the same bits as Generator.random,
 * in one pass.
 *
 * unifyparams.init.streams draws every seeded initializer's values from PCG64 streams, and its
 * uniforms are Generator.random's: a 64-bit output's top 53 bits times 2^-53 (float64), or each
 * 32-bit half's top 24 bits times 2^-24 (float32, the low half first), then scaled. NumPy makes them
 * in five passes over a block (the outputs, a shift, a conversion, a multiply, an add); here each
 * output goes straight to its values. PCG64's step is a 128-bit multiply-add whose result the next
 * step needs, so four lanes run four steps apart (each advanced four steps at a time: the multiplier
 * to the fourth power, the increment summed to match) and the CPU overlaps their multiplies.
 *
 * Bit-identical to NumPy by construction: the same integer recurrence and output (XSL-RR), exact
 * integer-to-float conversions, and one rounded multiply and one rounded add per value, as NumPy's
 * arithmetic on float32/float64 arrays does (setup.py compiles with -ffp-contract=off, so no fused
 * multiply-add). unifyparams.draw_kernel loads it with ctypes (the GIL is released: threads draw at
 * once); without it (no compiler, no 128-bit integers) the NumPy path runs.
 */
#define Py_LIMITED_API 0x030A0000
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__SIZEOF_INT128__)
#define UP_PCG 1
typedef __uint128_t u128;

/* NumPy's PCG64 multiplier (PCG_DEFAULT_MULTIPLIER_128). */
#define MULTIPLIER ((((u128)2549297995355413924ULL) << 64) | (u128)4865540595714422341ULL)

/* The XSL-RR output of a state: the high and low halves xor-ed, rotated right by the top 6 bits. */
static inline uint64_t output(u128 state) {
    uint64_t x = (uint64_t)(state >> 64) ^ (uint64_t)state;
    unsigned rot = (unsigned)(state >> 122);
    return (x >> rot) | (x << ((64u - rot) & 63u));
}

/* The state from st[0..1] (high, low 64 bits) and the increment from st[2..3]. */
static inline u128 load128(const uint64_t *p) { return ((u128)p[0] << 64) | p[1]; }
static inline void store128(uint64_t *p, u128 v) {
    p[0] = (uint64_t)(v >> 64);
    p[1] = (uint64_t)v;
}

/* Calls emit(word, k) for the next `words` outputs of the stream in st (NumPy's order: step, then
   output the new state), k = 0, 1, ...; leaves st after them. */
#define DEFINE_WORDS(name, T, emit)                                                                   \
    static void name(uint64_t *st, T *out, size_t words, T folded, T offset) {                        \
        u128 s = load128(st), inc = load128(st + 2);                                                  \
        const u128 a1 = MULTIPLIER, a2 = a1 * a1, a3 = a2 * a1, a4 = a2 * a2;                         \
        const u128 c4 = inc * (a3 + a2 + a1 + 1);                                                     \
        size_t k = 0;                                                                                 \
        if (words >= 4) {                                                                             \
            u128 s0 = s * a1 + inc, s1 = s * a2 + inc * (a1 + 1), s2 = s * a3 + inc * (a2 + a1 + 1);  \
            u128 s3 = s * a4 + c4;                                                                    \
            for (; k + 4 <= words; k += 4) {                                                          \
                emit(output(s0), k);                                                                  \
                emit(output(s1), k + 1);                                                              \
                emit(output(s2), k + 2);                                                              \
                emit(output(s3), k + 3);                                                              \
                s = s3;                                                                               \
                s0 = s0 * a4 + c4;                                                                    \
                s1 = s1 * a4 + c4;                                                                    \
                s2 = s2 * a4 + c4;                                                                    \
                s3 = s3 * a4 + c4;                                                                    \
            }                                                                                         \
        }                                                                                             \
        for (; k < words; k++) {                                                                      \
            s = s * a1 + inc;                                                                         \
            emit(output(s), k);                                                                       \
        }                                                                                             \
        store128(st, s);                                                                              \
    }

/* float32: the low 32-bit half first, each half's top 24 bits. */
#define EMIT32(word, k)                                                                               \
    do {                                                                                              \
        uint64_t w_ = (word);                                                                         \
        float lo_ = (float)((uint32_t)w_ >> 8), hi_ = (float)((uint32_t)(w_ >> 32) >> 8);              \
        lo_ = lo_ * folded;                                                                           \
        hi_ = hi_ * folded;                                                                           \
        out[2 * (k)] = lo_ + offset;                                                                  \
        out[2 * (k) + 1] = hi_ + offset;                                                              \
    } while (0)

/* float64: the top 53 bits. */
#define EMIT64(word, k)                                                                               \
    do {                                                                                              \
        double v_ = (double)((word) >> 11);                                                           \
        v_ = v_ * folded;                                                                             \
        out[k] = v_ + offset;                                                                         \
    } while (0)

DEFINE_WORDS(words32, float, EMIT32)
DEFINE_WORDS(words64, double, EMIT64)
#else
#define UP_PCG 0
#endif

/* 1 when the functions below draw, else 0 (no 128-bit integers: the caller uses NumPy). */
int up_draws_available(void) { return UP_PCG; }

/* out[0 .. 2 * words) = (each half of the next `words` outputs of the PCG64 stream in st, low half
   first) >> 8, times `folded`, plus `offset`, in float32; st advanced past them. st: the state's high
   and low 64 bits, then the increment's. */
void up_uniform32(uint64_t *st, float *out, size_t words, float folded, float offset) {
#if UP_PCG
    words32(st, out, words, folded, offset);
#else
    (void)st, (void)out, (void)words, (void)folded, (void)offset;
#endif
}

/* out[0 .. words) = (the next `words` outputs >> 11) times `folded`, plus `offset`, in float64. */
void up_uniform64(uint64_t *st, double *out, size_t words, double folded, double offset) {
#if UP_PCG
    words64(st, out, words, folded, offset);
#else
    (void)st, (void)out, (void)words, (void)folded, (void)offset;
#endif
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_draws",
    .m_doc = "Uniform values from NumPy's PCG64 stream (loaded with ctypes).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__draws(void) { return PyModule_Create(&module); }
