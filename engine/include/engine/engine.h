/* The C API: load a model, set its early-exit thresholds, classify one image at a time.
   Pure C (C99), usable from any language with a C FFI. No function lets an error escape other
   than as a status: on failure, engine_last_error() says what went wrong in one line.
   A model is not thread-safe: use one engine_model per thread (each has its own memory plan). */
#ifndef ENGINE_ENGINE_H
#define ENGINE_ENGINE_H

#include <stdint.h>

#include "engine/api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct engine_model engine_model;

typedef enum {
    ENGINE_OK = 0,
    ENGINE_ERR_IO = 1,     /* file missing or unreadable */
    ENGINE_ERR_FORMAT = 2, /* not a model, corrupt, or a model this API cannot run */
    ENGINE_ERR_ARG = 3,    /* NULL pointer, wrong count, unknown backend */
    ENGINE_ERR_RUNTIME = 4 /* failure while planning or running */
} engine_status;

typedef struct {
    int cls;            /* predicted class */
    float prob;         /* its softmax probability at the exit taken */
    int exit;           /* index of the exit taken, 0 = shallowest */
    int64_t latency_ns; /* wall time from the start of the run to the exit decision */
} engine_result;

/* Loads a native or ONNX model and plans it for batch 1 on `backend` ("ref", "native", ...;
   NULL = the default). *out is set to a new model on success and to NULL on failure. */
ENGINE_API engine_status engine_load(const char* path, const char* backend, engine_model** out);

/* n == engine_num_exits(m): one threshold per exit; n == 1: the same for every exit.
   Exit k fires when its maximum softmax probability >= q[k]; the last exit always fires. */
ENGINE_API engine_status engine_set_thresholds(engine_model* m, const float* q, int n);

/* Number of exits, or -1 when m is NULL. */
ENGINE_API int engine_num_exits(const engine_model* m);

/* The input shape at batch 1, N C H W (dims[0] == 1). */
ENGINE_API engine_status engine_input_shape(const engine_model* m, int64_t dims[4]);

/* Classifies one image (1 x C x H x W floats, as engine_input_shape says) with early exit. */
ENGINE_API engine_status engine_run(engine_model* m, const float* image, engine_result* out);

/* The last error on m, or (m == NULL) the last error of this thread, e.g. of a failed
   engine_load; "" when there was none. Valid until the next call with the same m / thread. */
ENGINE_API const char* engine_last_error(const engine_model* m);

/* A constant name for a status ("ENGINE_OK", ...). */
ENGINE_API const char* engine_status_name(engine_status s);

ENGINE_API void engine_free(engine_model* m);

#ifdef __cplusplus
}
#endif

#endif /* ENGINE_ENGINE_H */
