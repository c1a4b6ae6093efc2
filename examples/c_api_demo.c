/* Classifies a few images through the C API.
   usage: c_api_demo MODEL [CIFAR10_BIN [COUNT [THRESHOLD]]]
   Without a CIFAR-10 binary file (records of 1 label byte + 3072 pixel bytes, RGB planes) it
   classifies one all-zero image. Prints one line per image. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"

int main(int argc, char** argv) {
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: %s MODEL [CIFAR10_BIN [COUNT [THRESHOLD]]]\n", argv[0]);
        return 2;
    }
    const char* cifar = argc > 2 ? argv[2] : NULL;
    int count = argc > 3 ? atoi(argv[3]) : 5;
    engine_model* model = NULL;
    engine_status s = engine_load(argv[1], NULL, &model);
    if (s != ENGINE_OK) {
        fprintf(stderr, "%s: %s\n", engine_status_name(s), engine_last_error(NULL));
        return 1;
    }
    if (argc > 4) {
        float q = (float)atof(argv[4]);
        if (engine_set_thresholds(model, &q, 1) != ENGINE_OK) {
            fprintf(stderr, "%s\n", engine_last_error(model));
            engine_free(model);
            return 1;
        }
    }
    int64_t dims[4];
    engine_input_shape(model, dims);
    const long pixels = (long)(dims[1] * dims[2] * dims[3]);
    printf("model: %d exits, input 1x%ldx%ldx%ld\n", engine_num_exits(model), (long)dims[1], (long)dims[2],
           (long)dims[3]);

    FILE* f = NULL;
    if (cifar) {
        if (pixels != 3 * 32 * 32) {
            fprintf(stderr, "%s: the model does not take 3x32x32 CIFAR-10 images\n", argv[1]);
            engine_free(model);
            return 1;
        }
        f = fopen(cifar, "rb");
        if (!f) {
            perror(cifar);
            engine_free(model);
            return 1;
        }
    } else {
        count = 1;
    }
    float* image = calloc((size_t)pixels, sizeof(float));
    unsigned char record[1 + 3072];
    int status = 0;
    for (int i = 0; i < count && image; ++i) {
        int label = -1;
        if (f) {
            if (fread(record, 1, sizeof record, f) != sizeof record) break; /* end of file */
            label = record[0];
            for (long p = 0; p < pixels; ++p) image[p] = record[1 + p] / 255.0f;
        }
        engine_result r;
        s = engine_run(model, image, &r);
        if (s != ENGINE_OK) {
            fprintf(stderr, "%s: %s\n", engine_status_name(s), engine_last_error(model));
            status = 1;
            break;
        }
        printf("image %d label %d class %d prob %.6f exit %d latency_ns %lld\n", i, label, r.cls, r.prob, r.exit,
               (long long)r.latency_ns);
    }
    if (!image) {
        fprintf(stderr, "out of memory\n");
        status = 1;
    }
    free(image);
    if (f) fclose(f);
    engine_free(model);
    return status;
}
