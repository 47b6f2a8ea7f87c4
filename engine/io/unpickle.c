/*
 * Restricted unpickler (see unpickle.h). A small stack machine over a pool of values
 * addressed by index; containers hold index lists. Nothing recurses, so hostile nesting
 * only costs bounded memory.
 */
#include "unpickle.h"

#include <string.h>

enum {
    MAX_VALUES = 1 << 24, /* every value the pickle creates */
    MAX_MEMO = 1 << 22,
    MAX_MARKS = 256,      /* MARK nesting depth */
    MAX_STACK = 1 << 20,
    MAX_STR = 1 << 20,    /* bytes of one string */
};

typedef enum pv_kind {
    PV_NONE, PV_BOOL, PV_INT, PV_FLOAT, PV_STR, PV_TUPLE, PV_LIST, PV_DICT,
    PV_GLOBAL, PV_STORAGE, PV_TENSOR,
} pv_kind;

typedef enum pk_global {
    G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_STORAGE,
} pk_global;

typedef struct pv {
    pv_kind kind;
    int64_t i;        /* INT / BOOL; GLOBAL: pk_global; STORAGE: numel */
    double f;
    char *s;          /* STR; STORAGE: key */
    st_dtype dtype;   /* GLOBAL storage type, STORAGE, TENSOR */
    int32_t *items;   /* TUPLE / LIST / DICT (key, value pairs); TENSOR: [storage] */
    int32_t n, cap;
    int ndim;         /* TENSOR */
    int64_t shape[ST_MAX_DIMS];
    int64_t offset;   /* TENSOR storage offset */
} pv;

typedef struct unpickler {
    const uint8_t *buf;
    size_t size, pos, op_pos;
    const char *label;
    char *msg;
    size_t msg_size;
    pv *vals;
    int32_t nvals, capvals;
    int32_t *stack;
    int32_t sp, capstack;
    int32_t marks[MAX_MARKS];
    int nmarks;
    int32_t *memo;
    int32_t capmemo;
    int32_t nmemo; /* MEMOIZE's next index */
} unpickler;

static const struct {
    const char *module, *name;
    pk_global g;
    st_dtype dtype;
} k_allowed[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, ST_F32},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR, ST_F32},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, ST_F32},
    {"torch", "FloatStorage", G_STORAGE, ST_F32},
    {"torch", "HalfStorage", G_STORAGE, ST_F16},
    {"torch", "BFloat16Storage", G_STORAGE, ST_BF16},
    {"torch", "DoubleStorage", G_STORAGE, ST_F64},
    {"torch", "LongStorage", G_STORAGE, ST_I64},
    {"torch", "IntStorage", G_STORAGE, ST_I32},
    {"torch", "ShortStorage", G_STORAGE, ST_I16},
    {"torch", "CharStorage", G_STORAGE, ST_I8},
    {"torch", "ByteStorage", G_STORAGE, ST_U8},
    {"torch", "BoolStorage", G_STORAGE, ST_BOOL},
};

static cs_status fail(unpickler *u, const char *fmt, const char *what) {
    return cs_errf(CS_ERR_FORMAT, u->msg, u->msg_size, "%s: pickle at byte %zu: %s%s", u->label,
                   u->op_pos, fmt, what ? what : "");
}

static int32_t new_val(unpickler *u, pv_kind kind) {
    if (u->nvals == u->capvals) {
        if (u->capvals >= MAX_VALUES) return -1;
        int32_t cap = u->capvals ? u->capvals * 2 : 256;
        pv *v = realloc(u->vals, (size_t)cap * sizeof *v);
        if (!v) return -1;
        u->vals = v;
        u->capvals = cap;
    }
    pv *v = &u->vals[u->nvals];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    return u->nvals++;
}

static bool push(unpickler *u, int32_t id) {
    if (id < 0) return false;
    if (u->sp == u->capstack) {
        if (u->capstack >= MAX_STACK) return false;
        int32_t cap = u->capstack ? u->capstack * 2 : 64;
        int32_t *s = realloc(u->stack, (size_t)cap * sizeof *s);
        if (!s) return false;
        u->stack = s;
        u->capstack = cap;
    }
    u->stack[u->sp++] = id;
    return true;
}

static bool add_item(unpickler *u, int32_t container, int32_t item) {
    pv *c = &u->vals[container];
    if (c->n == c->cap) {
        if (c->cap >= MAX_STACK) return false;
        int32_t cap = c->cap ? c->cap * 2 : 4;
        int32_t *it = realloc(c->items, (size_t)cap * sizeof *it);
        if (!it) return false;
        c->items = it;
        c->cap = cap;
    }
    c->items[c->n++] = item;
    return true;
}

static bool need(unpickler *u, size_t n) {
    return n <= u->size - u->pos;
}

static uint64_t read_le(unpickler *u, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | u->buf[u->pos + (size_t)i];
    u->pos += (size_t)n;
    return v;
}

/* The stack top above the innermost mark becomes a new container's items. */
static cs_status pop_mark(unpickler *u, int32_t *base) {
    if (u->nmarks == 0) return fail(u, "no MARK to pop to", NULL);
    *base = u->marks[--u->nmarks];
    if (*base > u->sp) return fail(u, "stack underflow below a MARK", NULL);
    return CS_OK;
}

static cs_status make_tuple(unpickler *u, int32_t from, int32_t count) {
    int32_t t = new_val(u, PV_TUPLE);
    if (t < 0) return fail(u, "too many values", NULL);
    for (int32_t i = 0; i < count; i++)
        if (!add_item(u, t, u->stack[from + i])) return fail(u, "out of memory", NULL);
    u->sp = from;
    return push(u, t) ? CS_OK : fail(u, "stack too deep", NULL);
}

static cs_status set_items(unpickler *u, int32_t base) {
    if (base < 1 || (u->sp - base) % 2) return fail(u, "SETITEMS without a dict and pairs", NULL);
    int32_t d = u->stack[base - 1];
    if (u->vals[d].kind != PV_DICT) return fail(u, "SETITEM(S) on a value that is not a dict", NULL);
    for (int32_t i = base; i < u->sp; i++)
        if (!add_item(u, d, u->stack[i])) return fail(u, "out of memory", NULL);
    u->sp = base;
    return CS_OK;
}

static bool int_of(const unpickler *u, int32_t id, int64_t *out) {
    const pv *v = &u->vals[id];
    if (v->kind != PV_INT && v->kind != PV_BOOL) return false;
    *out = v->i;
    return true;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]).
 * Item lists are copied out first: new_val may move the value pool. */
static cs_status rebuild_tensor(unpickler *u, const int32_t *args, int32_t nargs, int32_t *out) {
    if (nargs < 4) return fail(u, "_rebuild_tensor_v2 with too few arguments", NULL);
    const pv *st = &u->vals[args[0]], *sz = &u->vals[args[2]], *sd = &u->vals[args[3]];
    int64_t offset;
    if (st->kind != PV_STORAGE || !int_of(u, args[1], &offset) || offset < 0 ||
        sz->kind != PV_TUPLE || sd->kind != PV_TUPLE || sz->n != sd->n || sz->n > ST_MAX_DIMS)
        return fail(u, "_rebuild_tensor_v2 arguments are not (storage, offset, size, stride)",
                    NULL);
    const int ndim = sz->n;
    const st_dtype dtype = st->dtype;
    const int32_t *sizes = sz->items, *strides = sd->items, storage = args[0];
    int64_t shape[ST_MAX_DIMS] = {0}, expect = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        int64_t dim, stride;
        if (!int_of(u, sizes[d], &dim) || !int_of(u, strides[d], &stride) || dim < 0 ||
            dim > ((int64_t)1 << 40))
            return fail(u, "tensor size/stride entries must be non-negative integers", NULL);
        /* contiguous: each stride is the product of the later sizes (any stride for size 1) */
        if (dim != 1 && stride != expect)
            return fail(u, "non-contiguous tensor (strides do not match its sizes); save it "
                           "with .contiguous()", NULL);
        shape[d] = dim;
        if (__builtin_mul_overflow(expect, dim, &expect))
            return fail(u, "tensor size overflows", NULL);
    }
    int32_t t = new_val(u, PV_TENSOR);
    if (t < 0) return fail(u, "too many values", NULL);
    pv *tv = &u->vals[t];
    tv->dtype = dtype;
    tv->ndim = ndim;
    tv->offset = offset;
    memcpy(tv->shape, shape, sizeof shape);
    if (!add_item(u, t, storage)) return fail(u, "out of memory", NULL);
    *out = t;
    return CS_OK;
}

static cs_status op_reduce(unpickler *u) {
    if (u->sp < 2) return fail(u, "REDUCE on a short stack", NULL);
    int32_t fn = u->stack[u->sp - 2], ar = u->stack[u->sp - 1];
    const pv *f = &u->vals[fn], *args = &u->vals[ar];
    if (f->kind != PV_GLOBAL || args->kind != PV_TUPLE)
        return fail(u, "REDUCE of something other than an allowed global", NULL);
    int32_t out = -1;
    cs_status st = CS_OK;
    switch ((pk_global)f->i) {
    case G_ORDERED_DICT:
        if (args->n != 0) return fail(u, "OrderedDict called with arguments", NULL);
        out = new_val(u, PV_DICT);
        break;
    case G_REBUILD_TENSOR:
        st = rebuild_tensor(u, args->items, args->n, &out);
        break;
    case G_REBUILD_PARAMETER:
        if (args->n < 1 || u->vals[args->items[0]].kind != PV_TENSOR)
            return fail(u, "_rebuild_parameter of something other than a tensor", NULL);
        out = args->items[0];
        break;
    case G_STORAGE:
        return fail(u, "REDUCE calling a storage type", NULL);
    }
    if (st != CS_OK) return st;
    if (out < 0) return fail(u, "too many values", NULL);
    u->sp -= 2;
    return push(u, out) ? CS_OK : fail(u, "stack too deep", NULL);
}

/* BINPERSID ('storage', <T>Storage, key, location, numel) */
static cs_status op_persid(unpickler *u) {
    if (u->sp < 1) return fail(u, "BINPERSID on an empty stack", NULL);
    const pv *t = &u->vals[u->stack[u->sp - 1]];
    int64_t numel;
    if (t->kind != PV_TUPLE || t->n < 5 || u->vals[t->items[0]].kind != PV_STR ||
        strcmp(u->vals[t->items[0]].s, "storage") != 0 ||
        u->vals[t->items[1]].kind != PV_GLOBAL || u->vals[t->items[1]].i != G_STORAGE ||
        u->vals[t->items[2]].kind != PV_STR || !int_of(u, t->items[4], &numel) || numel < 0)
        return fail(u, "persistent id is not ('storage', <T>Storage, key, location, numel)",
                    NULL);
    int32_t s = new_val(u, PV_STORAGE);
    if (s < 0) return fail(u, "too many values", NULL);
    t = &u->vals[u->stack[u->sp - 1]];
    u->vals[s].dtype = u->vals[t->items[1]].dtype;
    u->vals[s].i = numel;
    u->vals[s].s = strdup(u->vals[t->items[2]].s);
    if (!u->vals[s].s) return fail(u, "out of memory", NULL);
    u->stack[u->sp - 1] = s;
    return CS_OK;
}

static cs_status op_global(unpickler *u, const char *module, const char *name) {
    for (size_t i = 0; i < sizeof k_allowed / sizeof k_allowed[0]; i++) {
        if (strcmp(module, k_allowed[i].module) || strcmp(name, k_allowed[i].name)) continue;
        int32_t g = new_val(u, PV_GLOBAL);
        if (g < 0) return fail(u, "too many values", NULL);
        u->vals[g].i = k_allowed[i].g;
        u->vals[g].dtype = k_allowed[i].dtype;
        return push(u, g) ? CS_OK : fail(u, "stack too deep", NULL);
    }
    char what[200];
    snprintf(what, sizeof what, "%.90s.%.90s", module, name);
    return fail(u, "refusing global ", what);
}

static cs_status read_line(unpickler *u, char *out, size_t size) {
    const uint8_t *nl = memchr(u->buf + u->pos, '\n', u->size - u->pos);
    if (!nl || (size_t)(nl - (u->buf + u->pos)) >= size) return fail(u, "bad GLOBAL line", NULL);
    size_t len = (size_t)(nl - (u->buf + u->pos));
    memcpy(out, u->buf + u->pos, len);
    out[len] = '\0';
    u->pos += len + 1;
    return CS_OK;
}

static cs_status push_str(unpickler *u, size_t len) {
    if (len > MAX_STR || !need(u, len)) return fail(u, "string runs past the end", NULL);
    int32_t s = new_val(u, PV_STR);
    if (s < 0) return fail(u, "too many values", NULL);
    u->vals[s].s = strndup((const char *)u->buf + u->pos, len);
    if (!u->vals[s].s) return fail(u, "out of memory", NULL);
    u->pos += len;
    return push(u, s) ? CS_OK : fail(u, "stack too deep", NULL);
}

static cs_status memo_put(unpickler *u, uint64_t idx) {
    if (u->sp < 1) return fail(u, "memo store on an empty stack", NULL);
    if (idx >= MAX_MEMO) return fail(u, "memo index too large", NULL);
    if ((int64_t)idx >= u->capmemo) {
        int32_t cap = u->capmemo ? u->capmemo : 64;
        while (cap <= (int64_t)idx) cap *= 2;
        int32_t *m = realloc(u->memo, (size_t)cap * sizeof *m);
        if (!m) return fail(u, "out of memory", NULL);
        for (int32_t i = u->capmemo; i < cap; i++) m[i] = -1;
        u->memo = m;
        u->capmemo = cap;
    }
    u->memo[idx] = u->stack[u->sp - 1];
    if ((int64_t)idx >= u->nmemo) u->nmemo = (int32_t)idx + 1;
    return CS_OK;
}

static cs_status memo_get(unpickler *u, uint64_t idx) {
    if (idx >= (uint64_t)u->capmemo || u->memo[idx] < 0) return fail(u, "memo get of an unset index", NULL);
    return push(u, u->memo[idx]) ? CS_OK : fail(u, "stack too deep", NULL);
}

#define NEED(n) \
    do { if (!need(u, n)) return fail(u, "opcode argument runs past the end", NULL); } while (0)
#define PUSH(kind, field, value)                                                  \
    do {                                                                          \
        int32_t id_ = new_val(u, kind);                                           \
        if (id_ < 0) return fail(u, "too many values", NULL);                     \
        u->vals[id_].field = value;                                               \
        if (!push(u, id_)) return fail(u, "stack too deep", NULL);                \
    } while (0)

/* Runs one opcode; *done at STOP. */
static cs_status step(unpickler *u, bool *done) {
    u->op_pos = u->pos;
    const uint8_t op = u->buf[u->pos++];
    int32_t base = 0;
    cs_status st;
    switch (op) {
    case 0x80: NEED(1); u->pos++; return CS_OK;                /* PROTO */
    case 0x95: NEED(8); u->pos += 8; return CS_OK;             /* FRAME */
    case '}': PUSH(PV_DICT, i, 0); return CS_OK;               /* EMPTY_DICT */
    case ']': PUSH(PV_LIST, i, 0); return CS_OK;               /* EMPTY_LIST */
    case ')': PUSH(PV_TUPLE, i, 0); return CS_OK;              /* EMPTY_TUPLE */
    case 'N': PUSH(PV_NONE, i, 0); return CS_OK;
    case 0x88: PUSH(PV_BOOL, i, 1); return CS_OK;              /* NEWTRUE */
    case 0x89: PUSH(PV_BOOL, i, 0); return CS_OK;              /* NEWFALSE */
    case 'K': NEED(1); PUSH(PV_INT, i, (int64_t)read_le(u, 1)); return CS_OK;
    case 'M': NEED(2); PUSH(PV_INT, i, (int64_t)read_le(u, 2)); return CS_OK;
    case 'J': NEED(4); PUSH(PV_INT, i, (int64_t)(int32_t)(uint32_t)read_le(u, 4)); return CS_OK;
    case 0x8a: {                                               /* LONG1 */
        NEED(1);
        int len = u->buf[u->pos++];
        if (len > 8) return fail(u, "LONG1 wider than 64 bits", NULL);
        NEED((size_t)len);
        uint64_t v = len ? read_le(u, len) : 0;
        if (len > 0 && len < 8 && (v >> (8 * len - 1)) & 1) v |= ~(uint64_t)0 << (8 * len);
        PUSH(PV_INT, i, (int64_t)v);
        return CS_OK;
    }
    case 'G': {                                                /* BINFLOAT (big-endian) */
        NEED(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) bits = bits << 8 | u->buf[u->pos++];
        double d;
        memcpy(&d, &bits, sizeof d);
        PUSH(PV_FLOAT, f, d);
        return CS_OK;
    }
    case 'X': NEED(4); return push_str(u, (size_t)read_le(u, 4)); /* BINUNICODE */
    case 0x8c: NEED(1); return push_str(u, (size_t)read_le(u, 1)); /* SHORT_BINUNICODE */
    case '(':                                                  /* MARK */
        if (u->nmarks == MAX_MARKS) return fail(u, "MARK nesting too deep", NULL);
        u->marks[u->nmarks++] = u->sp;
        return CS_OK;
    case 't':                                                  /* TUPLE */
        if ((st = pop_mark(u, &base)) != CS_OK) return st;
        return make_tuple(u, base, u->sp - base);
    case 0x85: case 0x86: case 0x87: {                         /* TUPLE1..3 */
        int32_t k = op - 0x84;
        if (u->sp < k) return fail(u, "TUPLEn on a short stack", NULL);
        return make_tuple(u, u->sp - k, k);
    }
    case 's':                                                  /* SETITEM */
        if (u->sp < 3) return fail(u, "SETITEM on a short stack", NULL);
        return set_items(u, u->sp - 2);
    case 'u':                                                  /* SETITEMS */
        if ((st = pop_mark(u, &base)) != CS_OK) return st;
        return set_items(u, base);
    case 'a':                                                  /* APPEND */
        if (u->sp < 2 || u->vals[u->stack[u->sp - 2]].kind != PV_LIST)
            return fail(u, "APPEND to a value that is not a list", NULL);
        if (!add_item(u, u->stack[u->sp - 2], u->stack[u->sp - 1])) return fail(u, "out of memory", NULL);
        u->sp--;
        return CS_OK;
    case 'e':                                                  /* APPENDS */
        if ((st = pop_mark(u, &base)) != CS_OK) return st;
        if (base < 1 || u->vals[u->stack[base - 1]].kind != PV_LIST)
            return fail(u, "APPENDS to a value that is not a list", NULL);
        for (int32_t i = base; i < u->sp; i++)
            if (!add_item(u, u->stack[base - 1], u->stack[i])) return fail(u, "out of memory", NULL);
        u->sp = base;
        return CS_OK;
    case 'q': NEED(1); return memo_put(u, read_le(u, 1));      /* BINPUT */
    case 'r': NEED(4); return memo_put(u, read_le(u, 4));      /* LONG_BINPUT */
    case 0x94: return memo_put(u, (uint64_t)u->nmemo);       /* MEMOIZE (protocol 4) */
    case 'h': NEED(1); return memo_get(u, read_le(u, 1));      /* BINGET */
    case 'j': NEED(4); return memo_get(u, read_le(u, 4));      /* LONG_BINGET */
    case 'c': {                                                /* GLOBAL */
        char module[128], name[128];
        if ((st = read_line(u, module, sizeof module)) != CS_OK) return st;
        if ((st = read_line(u, name, sizeof name)) != CS_OK) return st;
        return op_global(u, module, name);
    }
    case 0x93: {                                               /* STACK_GLOBAL */
        if (u->sp < 2 || u->vals[u->stack[u->sp - 2]].kind != PV_STR ||
            u->vals[u->stack[u->sp - 1]].kind != PV_STR)
            return fail(u, "STACK_GLOBAL without module and name strings", NULL);
        const char *module = u->vals[u->stack[u->sp - 2]].s, *name = u->vals[u->stack[u->sp - 1]].s;
        u->sp -= 2;
        return op_global(u, module, name);
    }
    case 'Q': return op_persid(u);                             /* BINPERSID */
    case 'R': return op_reduce(u);                             /* REDUCE */
    case 'b':                                                  /* BUILD */
        /* torch's OrderedDict state dicts carry {_metadata: ...}: plain data, ignored */
        if (u->sp < 2 || u->vals[u->stack[u->sp - 2]].kind != PV_DICT ||
            (u->vals[u->stack[u->sp - 1]].kind != PV_DICT && u->vals[u->stack[u->sp - 1]].kind != PV_NONE))
            return fail(u, "BUILD is only accepted on a dict with a dict state", NULL);
        u->sp--;
        return CS_OK;
    case '.': *done = true; return CS_OK;                      /* STOP */
    default: {
        char what[48];
        snprintf(what, sizeof what, "0x%02x ('%c')", op, op >= 0x20 && op < 0x7f ? op : '?');
        return fail(u, "refusing opcode ", what);
    }
    }
}

static const pv *dict_get(const unpickler *u, const pv *d, const char *key) {
    for (int32_t i = 0; i + 1 < d->n; i += 2) {
        const pv *k = &u->vals[d->items[i]];
        if (k->kind == PV_STR && strcmp(k->s, key) == 0) return &u->vals[d->items[i + 1]];
    }
    return NULL;
}

static cs_status collect(unpickler *u, const pv *root, pk_state_dict *out) {
    if (root->kind != PV_DICT) return fail(u, "the pickled object is not a dict", NULL);
    const pv *gs = dict_get(u, root, "global_step");
    out->global_step = gs && gs->kind == PV_INT ? gs->i : -1;
    const pv *sd = dict_get(u, root, "state_dict");
    if (!sd) sd = root;
    if (sd->kind != PV_DICT) return fail(u, "\"state_dict\" is not a dict", NULL);
    out->tensors = cs_calloc((size_t)sd->n / 2 + 1, sizeof *out->tensors);
    if (!out->tensors) return fail(u, "out of memory", NULL);
    for (int32_t i = 0; i + 1 < sd->n; i += 2) {
        const pv *k = &u->vals[sd->items[i]], *v = &u->vals[sd->items[i + 1]];
        if (k->kind != PV_STR || v->kind != PV_TENSOR) continue;
        const pv *s = &u->vals[v->items[0]];
        pk_tensor *t = &out->tensors[out->count];
        t->name = strdup(k->s);
        t->storage_key = strdup(s->s);
        if (!t->name || !t->storage_key) {
            free(t->name);
            free(t->storage_key);
            return fail(u, "out of memory", NULL);
        }
        t->dtype = v->dtype;
        t->ndim = v->ndim;
        memcpy(t->shape, v->shape, sizeof t->shape);
        t->storage_offset = v->offset;
        t->storage_numel = s->i;
        out->count++;
    }
    return CS_OK;
}

cs_status unpickle_state_dict(const uint8_t *buf, size_t size, const char *label,
                              pk_state_dict *out, char *msg, size_t msg_size) {
    memset(out, 0, sizeof *out);
    out->global_step = -1;
    unpickler u = {.buf = buf, .size = size, .label = label, .msg = msg, .msg_size = msg_size};
    cs_status st = CS_OK;
    bool done = false;
    while (st == CS_OK && !done) {
        if (u.pos >= u.size) {
            u.op_pos = u.pos;
            st = fail(&u, "ends without STOP", NULL);
            break;
        }
        st = step(&u, &done);
    }
    if (st == CS_OK && u.sp != 1) {
        st = fail(&u, "STOP with a stack that does not hold exactly one object", NULL);
    }
    if (st == CS_OK) st = collect(&u, &u.vals[u.stack[0]], out);
    for (int32_t i = 0; i < u.nvals; i++) {
        free(u.vals[i].s);
        free(u.vals[i].items);
    }
    free(u.vals);
    free(u.stack);
    free(u.memo);
    if (st != CS_OK) pk_state_dict_free(out);
    return st;
}

void pk_state_dict_free(pk_state_dict *sd) {
    if (!sd) return;
    for (int64_t i = 0; i < sd->count; i++) {
        free(sd->tensors[i].name);
        free(sd->tensors[i].storage_key);
    }
    free(sd->tensors);
    sd->tensors = NULL;
    sd->count = 0;
}
