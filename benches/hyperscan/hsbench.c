/* Hyperscan (the 4 GB/s reference) on our own workload: each line
 * of a file scanned with one block-mode database, as redactd scans lines.
 *
 *   hsbench FILE LIST lit|re
 *
 * lit: LIST holds literals, matched ASCII case-insensitively (hs_compile_lit_multi,
 * the counterpart of redactd's keyword automaton).
 * re: LIST holds regular expressions (hs_compile_multi, the counterpart of
 * redactd's pattern set). Prints MB/s of three rounds and the match count. */
#include <hs/hs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long hits;
static int on_match(unsigned id, unsigned long long from, unsigned long long to,
                    unsigned flags, void *ctx) {
    (void)id; (void)from; (void)to; (void)flags; (void)ctx;
    hits++;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: hsbench FILE LIST lit|re\n"); return 2; }
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 1; }
    fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
    char *data = malloc(n);
    if (!data || fread(data, 1, n, f) != (size_t)n) { fprintf(stderr, "read failed\n"); return 1; }
    fclose(f);
    int lit = strcmp(argv[3], "lit") == 0;
    char *exprs[4096]; size_t lens[4096]; unsigned flags[4096], ids[4096]; int k = 0;
    FILE *lf = fopen(argv[2], "r");
    if (!lf) { perror(argv[2]); return 1; }
    char line[8192];
    while (k < 4096 && fgets(line, sizeof line, lf)) {
        size_t l = strlen(line);
        if (l && line[l - 1] == '\n') line[--l] = 0;
        if (!l) continue;
        exprs[k] = strdup(line); lens[k] = l; ids[k] = k;
        flags[k] = lit ? HS_FLAG_CASELESS : 0;
        k++;
    }
    fclose(lf);
    hs_database_t *db; hs_compile_error_t *err;
    hs_error_t rc = lit
        ? hs_compile_lit_multi((const char *const *)exprs, flags, ids, lens, k, HS_MODE_BLOCK, NULL, &db, &err)
        : hs_compile_multi((const char *const *)exprs, flags, ids, k, HS_MODE_BLOCK, NULL, &db, &err);
    if (rc != HS_SUCCESS) { fprintf(stderr, "compile: %s (expression %d)\n", err->message, err->expression); return 1; }
    hs_scratch_t *scratch = NULL;
    if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS) { fprintf(stderr, "scratch\n"); return 1; }
    for (int round = 0; round < 3; round++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        hits = 0;
        for (char *p = data, *end = data + n; p < end;) {
            char *q = memchr(p, '\n', end - p);
            if (!q) q = end;
            hs_scan(db, p, q - p, 0, scratch, on_match, NULL);
            p = q + 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double dt = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
        printf("%s %s: %d expressions, %.0f MB/s, %ld matches\n", argv[1], argv[3], k, n / 1e6 / dt, hits);
    }
    return 0;
}
