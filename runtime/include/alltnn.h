/*
 * alltnn.h: the C API of alltnn-runtime (runtime/src/capi.rs), linked from liballtnn.a
 * (ffi/: `cargo build --release --manifest-path ffi/Cargo.toml`) or from a Rust build of
 * alltnn-runtime with the `capi` feature. Written by hand; runtime tests check that it
 * declares every exported function and status code.
 *
 * Status: every function but alltnn_last_error returns ALLTNN_OK (0) or a negative
 * ALLTNN_ERR_* code; alltnn_last_error() then holds a one-line message. Arguments are checked:
 * bad pointers (null, misaligned), sizes and model bytes give an error, never a crash.
 *
 * Memory:
 *  - Model bytes are used in place, never copied: they must start at a 64-byte aligned address
 *    (`_Alignas(64) static const unsigned char model[] = {...}`, else ALLTNN_ERR_MISALIGNED)
 *    and stay alive and unchanged until alltnn_model_free.
 *  - Activations live in an arena the caller lends to alltnn_session_new: 4-byte aligned, at
 *    least alltnn_arena_size bytes for the session's batch size (`alltnn info --memory`).
 *  - Metadata (model spec and tensor table, session bookkeeping: a few kB) comes from the
 *    global allocator. In liballtnn.a (no_std) that is a bump allocator over a buffer the
 *    program registers once with alltnn_set_heap before any other call; freed memory is reused
 *    only when it was the most recent allocation. Without a heap, or with an exhausted one,
 *    opening a model calls abort(): size the heap with alltnn_heap_used on the host.
 *  - alltnn_run allocates nothing.
 *
 * Threads: objects may be used from any thread, one call at a time per session. The
 * alltnn_last_error buffer is one per process: read it from the thread whose call failed
 * before another call fails.
 */
#ifndef ALLTNN_H
#define ALLTNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ALLTNN_OK 0
/* A required pointer is null. */
#define ALLTNN_ERR_NULL (-1)
/* Model bytes not 64-byte aligned, or a float buffer not aligned for its type. */
#define ALLTNN_ERR_MISALIGNED (-2)
/* The model bytes are not a valid .tnn file (truncated, corrupt, inconsistent). */
#define ALLTNN_ERR_FORMAT (-3)
/* A batch size of 0, or sizes too large to address. */
#define ALLTNN_ERR_ARGUMENT (-4)
/* The arena is smaller than alltnn_arena_size reports. */
#define ALLTNN_ERR_ARENA (-5)
/* The input does not hold 1 to `batch` whole images. */
#define ALLTNN_ERR_INPUT (-6)
/* An output buffer does not have the length the call produces. */
#define ALLTNN_ERR_OUTPUT (-7)
/* A call out of order: energy before any run, a heap registered twice. */
#define ALLTNN_ERR_STATE (-8)

/* An opened model. */
typedef struct alltnn_model alltnn_model;
/* A model with its buffers for one batch size. */
typedef struct alltnn_session alltnn_session;

typedef struct alltnn_model_info {
    size_t height;
    size_t width;
    size_t channels;
    /* Floats per image: height * width * channels (NHWC). */
    size_t input_len;
    size_t classes;
    size_t layers;
} alltnn_model_info;

/* liballtnn.a only: registers `len` bytes at `heap` as the library's heap (once, first). */
int alltnn_set_heap(void *heap, size_t len);

/* liballtnn.a only: heap bytes in use (up to the end of the most recent allocation). */
int alltnn_heap_used(size_t *used);

/* Opens a .tnn model in memory; checks header, metadata and every tensor checksum. */
int alltnn_model_open_bytes(const uint8_t *bytes, size_t len, alltnn_model **out);

int alltnn_model_get_info(const alltnn_model *model, alltnn_model_info *info);

/* Arena bytes a session for batches of up to `batch` images needs. */
int alltnn_arena_size(const alltnn_model *model, size_t batch, size_t *bytes);

/* A session for batches of up to `batch` images, its buffers in `arena`. The model must
 * outlive the session; nothing else may touch the arena until alltnn_session_free. */
int alltnn_session_new(const alltnn_model *model, size_t batch, void *arena, size_t arena_len,
                       alltnn_session **out);

/* Runs `len` floats (1 to `batch` preprocessed NHWC images) and writes images * classes
 * probabilities (or linear outputs, as the model says) to `probs_out`, which holds exactly
 * `probs_len` floats. */
int alltnn_run(alltnn_session *session, const float *input, size_t len, float *probs_out,
               size_t probs_len);

/* Per-layer energy E_post/3 + 2*E_pre/3 summed over units and images of the last run (the
 * original's definition; see `alltnn energy`) into `energy_out[layers]`. `input` must be the
 * last run's input: the session keeps activations, not images. */
int alltnn_energy(const alltnn_session *session, const float *input, size_t len,
                  double *energy_out, size_t layers);

/* Free a session or a model (null is ignored); free sessions before their model. */
int alltnn_session_free(alltnn_session *session);
int alltnn_model_free(alltnn_model *model);

/* Message of the last failed call (empty if none): NUL-terminated, in a static buffer. */
const char *alltnn_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* ALLTNN_H */
