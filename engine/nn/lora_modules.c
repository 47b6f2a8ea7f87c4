/* LoRA target tables (see lora_modules.h). */
#include "lora_modules.h"

#include <string.h>

int32_t lora_module_add(lora_module_table *t, const char *path, bool conv, int64_t in,
                        int64_t out, int64_t kernel, gemm_weights *w) {
    if (!t || t->overflow) return 0;
    if (t->count == t->cap) {
        int cap = t->cap ? t->cap * 2 : 128;
        lora_module *items = realloc(t->items, (size_t)cap * sizeof *items);
        if (!items) {
            t->overflow = true;
            return 0;
        }
        t->items = items;
        t->cap = cap;
    }
    lora_module *m = &t->items[t->count];
    int len = snprintf(m->name, sizeof m->name, "%s%s", t->prefix, path);
    if (len < 0 || (size_t)len >= sizeof m->name) {
        t->overflow = true;
        return 0;
    }
    for (char *p = m->name + strlen(t->prefix); *p; p++)
        if (*p == '.') *p = '_';
    m->conv = conv;
    m->in = in;
    m->out = out;
    m->kernel = kernel;
    m->w = w;
    return ++t->count;
}

void lora_module_table_free(lora_module_table *t) {
    if (!t) return;
    free(t->items);
    t->items = NULL;
    t->count = t->cap = 0;
}
