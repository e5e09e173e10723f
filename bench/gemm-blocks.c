// The cost of cutting one product into fixed blocks (BLAS.parallelGemm): cblas_sgemm on the
// trainer's and the text tower's shapes as one call and as 2, 4, 8 and 16 blocks (rows, or columns
// when the product is wider than tall, in multiples of 16, as parallelGemm cuts them), one thread,
// GFLOP/s best of 5. C = A · Bᵀ (a Linear layer's forward), row-major.
// Build: cc -O2 bench/gemm-blocks.c -o gemm-blocks -lopenblas   (bench/gemm-blocks.sh does it)
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

char *openblas_get_corename(void);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void product(int m, int n, int k, int blocks, const float *a, const float *b, float *c) {
    if (blocks <= 1) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n);
        return;
    }
    if (n > m) {
        int per = ((n + blocks - 1) / blocks + 15) / 16 * 16;
        for (int j0 = 0; j0 < n; j0 += per) {
            int j1 = j0 + per < n ? j0 + per : n;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, j1 - j0, k, 1, a, k, b + (size_t)j0 * k, k, 0, c + j0, n);
        }
    } else {
        int per = (m + blocks - 1) / blocks;
        for (int r0 = 0; r0 < m; r0 += per) {
            int r1 = r0 + per < m ? r0 + per : m;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, n, k, 1, a + (size_t)r0 * k, k, b, k, 0,
                        c + (size_t)r0 * n, n);
        }
    }
}

int main(void) {
    openblas_set_num_threads(1);
    const int shapes[][3] = {{400, 1536, 384}, {400, 384, 1536}, {400, 1152, 384}, {2048, 1536, 384},
                             {2048, 384, 1536}, {256, 512, 256}, {64, 128, 384}};
    printf("OpenBLAS core %s; GFLOP/s, one thread, best of 5\n", openblas_get_corename());
    printf("| m × n × k | 1 call | 2 blocks | 4 blocks | 8 blocks | 16 blocks |\n|---|---:|---:|---:|---:|---:|\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * n * k), *c = malloc(sizeof(float) * m * n);
        for (int i = 0; i < m * k; i++) a[i] = (float)(i % 13) * 0.01f;
        for (int i = 0; i < n * k; i++) b[i] = (float)(i % 7) * 0.01f;
        printf("| %d × %d × %d |", m, n, k);
        for (int blocks = 1; blocks <= 16; blocks *= 2) {
            double flops = 2.0 * m * n * k, best = 1e30;
            int reps = (int)(2e9 / flops) + 1;
            for (int round = 0; round < 6; round++) {
                double t0 = now();
                for (int r = 0; r < reps; r++) product(m, n, k, blocks, a, b, c);
                double t = (now() - t0) / reps;
                if (round > 0 && t < best) best = t;
            }
            printf(" %.1f |", flops / best / 1e9);
        }
        printf("\n");
        free(a); free(b); free(c);
    }
    return 0;
}
