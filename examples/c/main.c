/*
 * Runs a model embedded in the program through liballtnn.a (no operating system needed but
 * abort()): prints the probabilities and per-layer energy of one batch, then shows that a
 * misaligned model is refused with an error code and a message.
 *
 * model.h defines `_Alignas(64) static const unsigned char alltnn_model_bytes[]` (a .tnn file);
 * input.h `static const float alltnn_input[]` (preprocessed NHWC images). tests/c_api.rs
 * generates both from the tiny fixture, builds the library and this program, and checks the
 * output against TensorFlow's.
 *
 * cc -std=c11 -I runtime/include -I GENERATED examples/c/main.c liballtnn.a -lm -o main
 */
#include <stdio.h>
#include <string.h>

#include "alltnn.h"
#include "input.h"
#include "model.h"

#define CHECK(call)                                                                     \
    do {                                                                                \
        int status_ = (call);                                                           \
        if (status_ != ALLTNN_OK) {                                                     \
            fprintf(stderr, "%s: %d %s\n", #call, status_, alltnn_last_error());        \
            return 1;                                                                   \
        }                                                                               \
    } while (0)

/* Metadata of the model and session; alltnn_heap_used reports what is needed. */
static _Alignas(16) unsigned char heap[64 * 1024];
/* Activations; alltnn_arena_size says how much of it a batch size needs. */
static float arena[1 << 20];
static float probs[1 << 12];
static double energy[64];
/* A copy one byte off a 64-byte boundary, to show the refusal. */
static _Alignas(64) unsigned char shifted[sizeof alltnn_model_bytes + 1];

int main(void) {
    CHECK(alltnn_set_heap(heap, sizeof heap));
    alltnn_model *model;
    CHECK(alltnn_model_open_bytes(alltnn_model_bytes, sizeof alltnn_model_bytes, &model));
    alltnn_model_info info;
    CHECK(alltnn_model_get_info(model, &info));
    size_t input_len = sizeof alltnn_input / sizeof alltnn_input[0];
    size_t batch = input_len / info.input_len;
    size_t arena_bytes;
    CHECK(alltnn_arena_size(model, batch, &arena_bytes));
    if (arena_bytes > sizeof arena || batch * info.classes > sizeof probs / sizeof probs[0] ||
        info.layers > sizeof energy / sizeof energy[0]) {
        fprintf(stderr, "static buffers too small for this model\n");
        return 1;
    }
    alltnn_session *session;
    CHECK(alltnn_session_new(model, batch, arena, arena_bytes, &session));
    CHECK(alltnn_run(session, alltnn_input, input_len, probs, batch * info.classes));
    CHECK(alltnn_energy(session, alltnn_input, input_len, energy, info.layers));
    size_t heap_used;
    CHECK(alltnn_heap_used(&heap_used));
    printf("batch %zu classes %zu arena_bytes %zu heap_bytes %zu\n", batch, info.classes,
           arena_bytes, heap_used);
    for (size_t i = 0; i < batch * info.classes; i++) printf("prob %.9g\n", probs[i]);
    for (size_t l = 0; l < info.layers; l++) printf("energy %.17g\n", energy[l]);

    memcpy(shifted + 1, alltnn_model_bytes, sizeof alltnn_model_bytes);
    alltnn_model *refused;
    int status = alltnn_model_open_bytes(shifted + 1, sizeof alltnn_model_bytes, &refused);
    printf("misaligned %d %s\n", status, alltnn_last_error());

    CHECK(alltnn_session_free(session));
    CHECK(alltnn_model_free(model));
    return status == ALLTNN_ERR_MISALIGNED && refused == NULL ? 0 : 1;
}
