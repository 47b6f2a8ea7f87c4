/* Proves the evaluator's classifier on the data-set generator's own images.
 *
 * argv[1] is the folder training/make_eval_set.py wrote: images.png (64x64 tiles, 32 per
 * row, row-major) and labels.csv (shape,colour,size,position,background,texture names).
 * Every tile is classified; per-attribute accuracy and confusion matrices are printed and
 * each attribute must reach 98 %. The same tiles, blurred and upscaled, stand in for model
 * output (softer edges, other sizes) and must reach 98 % too. Degenerate inputs (empty,
 * one colour, noise, tiny) must give in-range answers without crashing, and the PNG reader
 * must expand gray and alpha files and refuse 16-bit and broken ones.
 * Single-threaded. */
#include "check.h"
#include "classify.h"
#include "png_read.h"

#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TILE 64
#define COLS 32
#define MIN_ACCURACY 0.98
#define MAX_LISTED_ERRORS 25

static const char *const texture_names[] = {"plain", "noise", "gradient", "stripes"};
enum { NTEXTURE = 4 };

typedef struct sample {
    ev_labels truth;
    int texture;
} sample;

typedef struct tally {
    long confusion[EV_NATTR][8][8]; /* [attr][truth][predicted]; 8 = the largest value count */
    long correct[EV_NATTR];
    long n;
} tally;

/* Parses labels.csv into *out (malloc'd). Returns the count, or -1 with a message. */
static int load_labels(const char *path, sample **out, char *msg, size_t msg_size) {
    static const char header[] = "shape,colour,size,position,background,texture";
    FILE *f = fopen(path, "r");
    *out = NULL;
    if (!f) {
        snprintf(msg, msg_size, "%s: cannot open (run training/make_eval_set.py)", path);
        return -1;
    }
    char line[256];
    int n = 0, cap = 0, lineno = 1;
    sample *s = NULL;
    if (!fgets(line, sizeof line, f) || strncmp(line, header, sizeof header - 1) != 0) {
        snprintf(msg, msg_size, "%s:1: header is not \"%s\"", path, header);
        goto fail;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            sample *g = realloc(s, (size_t)cap * sizeof *s);
            if (!g) {
                snprintf(msg, msg_size, "%s: out of memory", path);
                goto fail;
            }
            s = g;
        }
        char *save = NULL, *tok = strtok_r(line, ",", &save);
        for (int a = 0; a <= EV_NATTR; a++, tok = strtok_r(NULL, ",", &save)) {
            if (!tok) {
                snprintf(msg, msg_size, "%s:%d: %d fields, 6 expected", path, lineno, a);
                goto fail;
            }
            int v = -1;
            if (a < EV_NATTR) {
                v = ev_value_index(a, tok);
                s[n].truth.v[a] = v;
            } else {
                for (int t = 0; t < NTEXTURE; t++)
                    if (strcmp(tok, texture_names[t]) == 0) v = t;
                s[n].texture = v;
            }
            if (v < 0) {
                snprintf(msg, msg_size, "%s:%d: unknown %s \"%s\"", path, lineno,
                         a < EV_NATTR ? ev_attr_name(a) : "texture", tok);
                goto fail;
            }
        }
        if (tok) {
            snprintf(msg, msg_size, "%s:%d: more than 6 fields", path, lineno);
            goto fail;
        }
        n++;
    }
    if (n == 0) {
        snprintf(msg, msg_size, "%s: no samples", path);
        goto fail;
    }
    fclose(f);
    *out = s;
    return n;
fail:
    fclose(f);
    free(s);
    return -1;
}

/* Copies tile k of the grid into tile (TILE x TILE x 3). */
static void get_tile(const uint8_t *grid, int grid_w, int k, uint8_t *tile) {
    int r = k / COLS, c = k % COLS;
    for (int y = 0; y < TILE; y++)
        memcpy(tile + (size_t)y * TILE * 3,
               grid + ((size_t)(r * TILE + y) * grid_w + (size_t)c * TILE) * 3, TILE * 3);
}

/* Three passes of a 3x3 box filter (edge pixels replicated): roughly a Gaussian of sd 1.4,
 * softer than the data set and like decoded model output. */
static void blur(uint8_t *img, int w, int h) {
    uint8_t *tmp = malloc((size_t)w * h * 3);
    if (!tmp) return;
    for (int pass = 0; pass < 3; pass++) {
        memcpy(tmp, img, (size_t)w * h * 3);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    int sum = 0;
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++) {
                            int xx = x + dx < 0 ? 0 : x + dx >= w ? w - 1 : x + dx;
                            int yy = y + dy < 0 ? 0 : y + dy >= h ? h - 1 : y + dy;
                            sum += tmp[((size_t)yy * w + xx) * 3 + c];
                        }
                    img[((size_t)y * w + x) * 3 + c] = (uint8_t)((sum + 4) / 9);
                }
    }
    free(tmp);
}

/* Nearest-neighbour 2x upscale of a TILE x TILE image. */
static void upscale2(const uint8_t *src, uint8_t *dst) {
    for (int y = 0; y < 2 * TILE; y++)
        for (int x = 0; x < 2 * TILE; x++)
            memcpy(dst + ((size_t)y * 2 * TILE + x) * 3, src + ((size_t)(y / 2) * TILE + x / 2) * 3,
                   3);
}

static void tally_add(tally *t, const ev_labels *truth, const ev_labels *pred) {
    for (int a = 0; a < EV_NATTR; a++) {
        t->confusion[a][truth->v[a]][pred->v[a]]++;
        t->correct[a] += truth->v[a] == pred->v[a];
    }
    t->n++;
}

static void print_confusion(const tally *t, int a) {
    int nv = ev_value_count(a);
    printf("  %s (rows: truth, columns: predicted)\n  %10s", ev_attr_name(a), "");
    for (int p = 0; p < nv; p++)
        printf(" %8s", ev_value_name(a, p));
    printf("\n");
    for (int v = 0; v < nv; v++) {
        printf("  %10s", ev_value_name(a, v));
        for (int p = 0; p < nv; p++)
            printf(" %8ld", t->confusion[a][v][p]);
        printf("\n");
    }
}

/* Prints one line of accuracies; returns the lowest. */
static double print_accuracy(const char *what, const tally *t) {
    double lowest = 1.0;
    printf("%-22s n=%ld", what, t->n);
    for (int a = 0; a < EV_NATTR; a++) {
        double acc = t->n ? (double)t->correct[a] / (double)t->n : 0.0;
        if (acc < lowest) lowest = acc;
        printf("  %s %.2f%%", ev_attr_name(a), 100.0 * acc);
    }
    printf("\n");
    return lowest;
}

static void describe(const ev_labels *l, char *buf, size_t n) {
    snprintf(buf, n, "%s %s %s %s on %s", ev_value_name(EV_SIZE, l->v[EV_SIZE]),
             ev_value_name(EV_COLOUR, l->v[EV_COLOUR]), ev_value_name(EV_SHAPE, l->v[EV_SHAPE]),
             ev_value_name(EV_POSITION, l->v[EV_POSITION]),
             ev_value_name(EV_BACKGROUND, l->v[EV_BACKGROUND]));
}

static int labels_in_range(const ev_labels *l) {
    for (int a = 0; a < EV_NATTR; a++)
        if (l->v[a] < 0 || l->v[a] >= ev_value_count(a)) return 0;
    return 1;
}

/* The vocabulary matches dataset.py, in its order. */
static void check_vocabulary(void) {
    static const int counts[EV_NATTR] = {4, 8, 2, 5, 6};
    for (int a = 0; a < EV_NATTR; a++)
        CHECK_EQ_INT(ev_value_count(a), counts[a]);
    CHECK(strcmp(ev_attr_name(EV_COLOUR), "colour") == 0);
    CHECK(strcmp(ev_value_name(EV_COLOUR, 0), "red") == 0);
    CHECK(strcmp(ev_value_name(EV_SHAPE, 3), "star") == 0);
    CHECK(strcmp(ev_value_name(EV_POSITION, 4), "center") == 0);
    CHECK(strcmp(ev_value_name(EV_BACKGROUND, 5), "teal") == 0);
    CHECK_EQ_INT(ev_value_index(EV_BACKGROUND, "navy"), 3);
    CHECK_EQ_INT(ev_value_index(EV_SIZE, "large"), 1);
    CHECK_EQ_INT(ev_value_index(EV_SHAPE, "hexagon"), -1);
    CHECK_EQ_INT(ev_value_index(EV_SHAPE, NULL), -1);
    CHECK_EQ_INT(ev_value_index(EV_NATTR, "red"), -1);
    CHECK(ev_value_name(EV_SIZE, 2) == NULL);
    CHECK(ev_value_name(-1, 0) == NULL);
    CHECK(ev_attr_name(EV_NATTR) == NULL);
    CHECK_EQ_INT(ev_value_count(-1), 0);
}

/* Inputs with no shape, or garbage, must give in-range answers and never crash. */
static void check_degenerate(void) {
    static const uint8_t named_bg[6][3] = {{20, 20, 22}, {238, 238, 235}, {125, 125, 128},
                                           {22, 30, 85}, {222, 205, 165}, {20, 115, 115}};
    uint8_t *img = malloc(TILE * TILE * 3);
    ev_labels l;
    if (!img) {
        CHECK(img != NULL);
        return;
    }
    ev_classify(NULL, TILE, TILE, &l);
    CHECK(labels_in_range(&l));
    ev_classify(img, 0, TILE, &l);
    CHECK(labels_in_range(&l));
    ev_classify(img, TILE, -3, &l);
    CHECK(labels_in_range(&l));

    /* One colour everywhere: the background is that colour. */
    for (int b = 0; b < 6; b++) {
        for (int i = 0; i < TILE * TILE; i++)
            memcpy(img + 3 * i, named_bg[b], 3);
        ev_classify(img, TILE, TILE, &l);
        CHECK(labels_in_range(&l));
        CHECK_EQ_INT(l.v[EV_BACKGROUND], b);
    }
    memset(img, 0, TILE * TILE * 3);
    ev_classify(img, TILE, TILE, &l);
    CHECK(labels_in_range(&l));
    CHECK_EQ_INT(l.v[EV_BACKGROUND], 0); /* black */

    /* Uniform random noise, and tiny and lopsided images. */
    uint32_t state = 12345;
    for (int i = 0; i < TILE * TILE * 3; i++) {
        state = state * 1664525u + 1013904223u;
        img[i] = (uint8_t)(state >> 24);
    }
    const int sizes[][2] = {{TILE, TILE}, {1, 1}, {1, 64}, {64, 1}, {2, 3}, {7, 5}, {40, 64}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        ev_classify(img, sizes[k][0], sizes[k][1], &l);
        CHECK(labels_in_range(&l));
    }

    /* Left half one colour, right half another: a "shape" touching three sides. */
    for (int y = 0; y < TILE; y++)
        for (int x = 0; x < TILE; x++) {
            static const uint8_t red[3] = {220, 30, 30};
            memcpy(img + 3 * (y * TILE + x), x < TILE / 2 ? red : named_bg[1], 3);
        }
    ev_classify(img, TILE, TILE, &l);
    CHECK(labels_in_range(&l));

    /* A faint blob (distance 30 from the background): still a best guess, in range. */
    for (int i = 0; i < TILE * TILE; i++)
        memcpy(img + 3 * i, named_bg[2], 3);
    for (int y = 28; y < 36; y++)
        for (int x = 10; x < 18; x++)
            img[3 * (y * TILE + x)] = 125 + 30;
    ev_classify(img, TILE, TILE, &l);
    CHECK(labels_in_range(&l));
    CHECK_EQ_INT(l.v[EV_BACKGROUND], 2);
    CHECK_EQ_INT(l.v[EV_POSITION], 0); /* left */
    free(img);
}

/* png_read_rgb8 on gray, gray+alpha, RGBA and 16-bit files written here with libpng. */
static void check_png_read(void) {
    char path[64], msg[256];
    snprintf(path, sizeof path, "/tmp/test_classify_%d.png", (int)getpid());
    const uint8_t gray[6] = {0, 50, 100, 150, 200, 255};
    const uint8_t gray_alpha[4] = {200, 255, 200, 0}; /* opaque, then transparent */
    const uint8_t rgba[8] = {10, 20, 30, 255, 40, 50, 60, 255};
    const uint16_t deep[2] = {0, 65535};
    struct {
        const void *pixels;
        png_uint_32 format, width, height;
        int ok;
        uint8_t first[3];
    } cases[] = {{gray, PNG_FORMAT_GRAY, 3, 2, 1, {0, 0, 0}},
                 {gray_alpha, PNG_FORMAT_GA, 2, 1, 1, {200, 200, 200}},
                 {rgba, PNG_FORMAT_RGBA, 2, 1, 1, {10, 20, 30}},
                 {deep, PNG_FORMAT_LINEAR_Y, 2, 1, 0, {0, 0, 0}}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        png_image img;
        memset(&img, 0, sizeof img);
        img.version = PNG_IMAGE_VERSION;
        img.width = cases[k].width, img.height = cases[k].height, img.format = cases[k].format;
        CHECK(png_image_write_to_file(&img, path, 0, cases[k].pixels, 0, NULL));
        uint8_t *rgb = NULL;
        int w = 0, h = 0, rc = png_read_rgb8(path, &rgb, &w, &h, msg, sizeof msg);
        CHECK_EQ_INT(rc, cases[k].ok ? 0 : -1);
        if (rc == 0) {
            CHECK_EQ_INT(w, (long long)cases[k].width);
            CHECK_EQ_INT(h, (long long)cases[k].height);
            CHECK(memcmp(rgb, cases[k].first, 3) == 0);
        } else {
            CHECK(rgb == NULL);
            CHECK_STR_CONTAINS(msg, "16-bit");
        }
        free(rgb);
    }
    /* Transparent pixels come out black; gray expands to equal channels. */
    {
        png_image img;
        memset(&img, 0, sizeof img);
        img.version = PNG_IMAGE_VERSION;
        img.width = 2, img.height = 1, img.format = PNG_FORMAT_GA;
        CHECK(png_image_write_to_file(&img, path, 0, gray_alpha, 0, NULL));
        uint8_t *rgb = NULL;
        int w, h;
        if (png_read_rgb8(path, &rgb, &w, &h, msg, sizeof msg) == 0) {
            CHECK_EQ_INT(rgb[3] + rgb[4] + rgb[5], 0);
            free(rgb);
        }
    }
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("not a png", f);
        fclose(f);
    }
    uint8_t *rgb = (uint8_t *)1;
    int w, h;
    CHECK_EQ_INT(png_read_rgb8(path, &rgb, &w, &h, msg, sizeof msg), -1);
    CHECK(rgb == NULL);
    CHECK_STR_CONTAINS(msg, path);
    remove(path);
    CHECK_EQ_INT(png_read_rgb8(path, &rgb, &w, &h, msg, sizeof msg), -1);
    CHECK_STR_CONTAINS(msg, path);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s VALIDATION_DIR (written by training/make_eval_set.py)\n",
                argv[0]);
        return 2;
    }
    check_vocabulary();
    check_degenerate();
    check_png_read();

    char path[4096], msg[4096 + 256];
    sample *s = NULL;
    uint8_t *grid = NULL;
    int gw = 0, gh = 0;
    snprintf(path, sizeof path, "%s/labels.csv", argv[1]);
    int n = load_labels(path, &s, msg, sizeof msg);
    if (n < 0) {
        fprintf(stderr, "validation set: %s\n", msg);
        return 1;
    }
    snprintf(path, sizeof path, "%s/images.png", argv[1]);
    if (png_read_rgb8(path, &grid, &gw, &gh, msg, sizeof msg) != 0) {
        fprintf(stderr, "validation set: %s\n", msg);
        free(s);
        return 1;
    }
    int rows = (n + COLS - 1) / COLS;
    if (gw != COLS * TILE || gh != rows * TILE) {
        fprintf(stderr, "validation set: %s is %dx%d, but %d labels need %dx%d (%d per row)\n",
                path, gw, gh, n, COLS * TILE, rows * TILE, COLS);
        free(grid);
        free(s);
        return 1;
    }

    static tally plain, by_texture[NTEXTURE], blurred, upscaled;
    uint8_t tile[TILE * TILE * 3], big[4 * TILE * TILE * 3];
    int listed = 0;
    for (int k = 0; k < n; k++) {
        ev_labels pred;
        get_tile(grid, gw, k, tile);
        ev_classify(tile, TILE, TILE, &pred);
        tally_add(&plain, &s[k].truth, &pred);
        tally_add(&by_texture[s[k].texture], &s[k].truth, &pred);
        if (memcmp(&pred, &s[k].truth, sizeof pred) != 0 && listed++ < MAX_LISTED_ERRORS) {
            char a[128], b[128];
            describe(&s[k].truth, a, sizeof a);
            describe(&pred, b, sizeof b);
            printf("miss #%d (%s texture): truth %s; got %s\n", k, texture_names[s[k].texture], a,
                   b);
        }
        upscale2(tile, big);
        ev_classify(big, 2 * TILE, 2 * TILE, &pred);
        tally_add(&upscaled, &s[k].truth, &pred);
        blur(tile, TILE, TILE);
        ev_classify(tile, TILE, TILE, &pred);
        tally_add(&blurred, &s[k].truth, &pred);
    }

    printf("\nper-attribute accuracy on %d validation images:\n", n);
    double lowest = print_accuracy("all", &plain);
    for (int t = 0; t < NTEXTURE; t++) {
        char what[64];
        snprintf(what, sizeof what, "  %s texture", texture_names[t]);
        print_accuracy(what, &by_texture[t]);
    }
    double lowest_up = print_accuracy("upscaled 2x (128x128)", &upscaled);
    double lowest_blur = print_accuracy("blurred (3x3 box x3)", &blurred);
    printf("\nconfusion matrices:\n");
    for (int a = 0; a < EV_NATTR; a++)
        print_confusion(&plain, a);

    if (lowest < MIN_ACCURACY)
        fprintf(stderr, "FAIL: an attribute is below %.0f%% (lowest %.2f%%)\n", 100 * MIN_ACCURACY,
                100 * lowest);
    CHECK(lowest >= MIN_ACCURACY);
    CHECK(lowest_up >= MIN_ACCURACY);
    CHECK(lowest_blur >= MIN_ACCURACY);
    free(grid);
    free(s);
    CHECK_DONE();
}
