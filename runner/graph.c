/*
 * graph.c: a graph file's YAML tree -> layers with names, shapes and tensors. See graph.h.
 *
 * One walk expands the graph list in order: an op item becomes a layer (its settings have
 * their $expressions evaluated, are checked against the op's schema, and its shape follows
 * from its input's); a block or stage item binds the block's parameters and expands its body,
 * then, when the block has a join, its shortcut (only where the body changed the shape) and
 * the join. Block definitions are checked once, before any use, so a mistake in a block is
 * reported once. Every expression also sees the globals (expr.h): $classes, the class count
 * graph_build_for is given. Covered by tests/test_graph.c and tests/bad_yaml/.
 */
#include "graph.h"

#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "schema.h"
#include "validate.h"

struct block_def {
    const char *name;
    const struct node *key;       /* the block's name under blocks: */
    const char **params;          /* parameter names */
    const struct node **defaults; /* per parameter; NULL: required */
    size_t nparams;
    const struct node *body, *shortcut, *join; /* lists; shortcut and join may be NULL */
    bool ok;
};

/* The parameters of one block instance. */
struct env {
    const struct block_def *def;
    const struct node **values; /* per parameter of def */
};

struct builder {
    struct graph *g;
    struct arena *a;
    struct diag *d;
    struct block_def *defs;
    size_t ndefs;
    const struct block_def *stack[GRAPH_MAX_DEPTH];
    int depth;
    const struct node **seen; /* items whose errors were shown (blocks are used many times) */
    size_t nseen, capseen;
    size_t caplayers, captensors;
    int *slots;    /* hash of layer names: layer index + 1, 0 empty */
    size_t nslots; /* a power of two, at least twice the layers */
    bool failed, too_big;
    struct expr_global globals[1]; /* $classes */
};

/* Unnamed layers are numbered per op within a block instance (or the top level). */
struct scope {
    const char *prefix; /* "" at the top level */
    int counts[OP_KIND_COUNT];
};

/* A value flowing through the graph: its producer and shape (rank 0 after an error). */
struct flow {
    int layer;
    struct shape s;
};

static const char *const item_keys[] = {"name", "op", "block", "stage", "repeat"};

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return p;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need) n *= 2;
    void *q = realloc(p, n * size);
    if (!q) {
        fprintf(stderr, "runner: out of memory expanding the graph\n");
        abort();
    }
    *cap = n;
    return q;
}

static void list_words(char *buf, size_t size, const char *const *w, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", w[i]);
}

static bool scalar_text(const struct node *n)
{
    return n && n->kind == NODE_SCALAR && strlen(n->text) == n->len && !node_is_null(n);
}

/* What $names mean in a block instance (env), in a block's definition (def alone: checking
 * only), or outside blocks (neither); the globals ($classes) everywhere. */
static struct expr_scope scope_of(const struct builder *b, const struct block_def *def,
                                  const struct env *env)
{
    struct expr_scope sc = {.globals = b->globals, .nglobals = ARRAY_LEN(b->globals)};
    if (!def) return sc;
    sc.block = def->name;
    sc.names = def->params;
    sc.n = def->nparams;
    sc.values = env ? env->values : NULL;
    return sc;
}

/* The item's settings or arguments: its mapping without the item keys, substituted. */
static const struct node *item_args(struct builder *b, struct diag *d, const struct node *map,
                                    const struct block_def *def, const struct env *env)
{
    struct node *m = node_map(b->a, map->mark);
    struct expr_scope sc = scope_of(b, def, env);
    bool ok = true;
    for (size_t i = 0; i < map->n; i++) {
        bool skip = false;
        for (size_t k = 0; k < ARRAY_LEN(item_keys); k++)
            skip |= strcmp(map->keys[i]->text, item_keys[k]) == 0;
        if (skip) continue;
        const struct node *v = expr_subst(b->a, d, map->items[i], &sc);
        ok &= v != NULL;
        if (v) node_map_set(b->a, m, map->keys[i], (struct node *)v);
    }
    return ok ? m : NULL;
}

/* --------------------------------------------------------------------------------------- */
/* Items */

static bool valid_name(const char *s)
{
    if (!*s || strlen(s) > 200) return false;
    bool start = true;
    for (; *s; s++) {
        if (*s == '.') {
            if (start) return false;
            start = true;
            continue;
        }
        if (!expr_is_ident(*s, false)) return false;
        start = false;
    }
    return !start;
}

static const struct block_def *find_block(const struct builder *b, const char *name)
{
    for (size_t i = 0; i < b->ndefs; i++)
        if (strcmp(b->defs[i].name, name) == 0) return &b->defs[i];
    return NULL;
}

static bool seen(const struct builder *b, const struct node *item)
{
    for (size_t i = 0; i < b->nseen; i++)
        if (b->seen[i] == item) return true;
    return false;
}

/* Errors about item go to *d: the builder's diag the first time, a silent one after. */
static struct diag *item_diag(struct builder *b, const struct node *item, struct diag *quiet)
{
    *quiet = (struct diag){0};
    return seen(b, item) ? quiet : b->d;
}

static void item_done(struct builder *b, const struct node *item, struct diag *d, int before)
{
    if (d->errors == before) return;
    b->failed = true;
    if (d != b->d || seen(b, item)) return;
    b->seen = grow(b->seen, &b->capseen, b->nseen + 1, sizeof *b->seen);
    b->seen[b->nseen++] = item;
}

static const char *full_name(struct builder *b, const struct scope *sc, const char *name)
{
    return sc->prefix[0] ? arena_printf(b->a, "%s.%s", sc->prefix, name) : arena_strdup(b->a, name);
}

static size_t name_hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The layer called name, or -1; else inserts index under name when index >= 0. */
static int name_find_or_add(struct builder *b, const char *name, int index)
{
    if (index >= 0 && 2 * (b->g->nlayers + 1) > b->nslots) {
        size_t n = b->nslots ? 2 * b->nslots : 256;
        int *slots = calloc(n, sizeof *slots);
        if (!slots) {
            fprintf(stderr, "runner: out of memory expanding the graph\n");
            abort();
        }
        for (size_t i = 0; i < b->nslots; i++) {
            if (!b->slots[i]) continue;
            size_t h = name_hash(b->g->layers[b->slots[i] - 1].name) & (n - 1);
            while (slots[h]) h = (h + 1) & (n - 1);
            slots[h] = b->slots[i];
        }
        free(b->slots);
        b->slots = slots;
        b->nslots = n;
    }
    if (!b->nslots) return -1;
    size_t h = name_hash(name) & (b->nslots - 1);
    for (; b->slots[h]; h = (h + 1) & (b->nslots - 1))
        if (strcmp(b->g->layers[b->slots[h] - 1].name, name) == 0) return b->slots[h] - 1;
    if (index >= 0) b->slots[h] = index + 1;
    return -1;
}

/* Appends a layer fed by in[0..nin); checks its name and infers its shape. */
static struct flow add_layer(struct builder *b, struct diag *d, const struct node *at,
                             const char *name, enum op_kind k, const union op_params *p,
                             const struct flow *in, int nin, const char *hint)
{
    struct graph *g = b->g;
    if (g->nlayers == GRAPH_MAX_LAYERS) {
        diag_error(d, at->mark, "the graph expands to more than %d layers", GRAPH_MAX_LAYERS);
        b->too_big = true;
        return (struct flow){GRAPH_INPUT, {0}};
    }
    int first = name_find_or_add(b, name, -1);
    if (first >= 0) {
        diag_error(d, at->mark, "the name '%s' is used twice", name);
        struct mark m = g->layers[first].mark;
        diag_hint(d, "the first '%s' is at %s:%d:%d", name, m.src ? m.src->name : "?", m.line,
                  m.col);
        return (struct flow){GRAPH_INPUT, {0}};
    }
    g->layers = grow(g->layers, &b->caplayers, g->nlayers + 1, sizeof *g->layers);
    struct graph_layer *l = &g->layers[g->nlayers];
    *l = (struct graph_layer){.name = name, .op = k, .p = *p, .nin = nin, .mark = at->mark};
    struct shape ins[OP_MAX_INPUTS];
    bool known = true;
    for (int i = 0; i < nin; i++) {
        l->in[i] = in[i].layer;
        ins[i] = in[i].s;
        known &= in[i].s.rank != 0;
    }
    (void)name_find_or_add(b, name, (int)g->nlayers);
    g->nlayers++;
    const struct op_def *op = op_table[k];
    char why[320];
    if (!known) return (struct flow){(int)g->nlayers - 1, {0}};
    if (!op->infer(&l->p, ins, &l->out, why, sizeof why)) {
        diag_error(d, at->mark, "layer '%s': %s", name, why);
        if (hint) diag_hint(d, "%s", hint);
        l->out = (struct shape){0};
        return (struct flow){(int)g->nlayers - 1, {0}};
    }
    if (op->macs) l->macs = op->macs(&l->p, ins, &l->out);
    if (op->tensors) {
        struct op_tensor t[OP_MAX_TENSORS];
        int nt = op->tensors(&l->p, ins, &l->out, t);
        g->tensors = grow(g->tensors, &b->captensors, g->ntensors + (size_t)nt, sizeof *g->tensors);
        l->tensor0 = g->ntensors;
        l->ntensors = (size_t)nt;
        for (int i = 0; i < nt; i++)
            g->tensors[g->ntensors++] = (struct graph_tensor){
                arena_printf(b->a, "%s.%s", name, t[i].suffix), t[i], (int)g->nlayers - 1};
    }
    return (struct flow){(int)g->nlayers - 1, l->out};
}

static void unknown_op(struct builder *b, struct diag *d, const struct node *at)
{
    diag_error(d, at->mark, "unknown op '%s'", at->text);
    if (find_block(b, at->text)) {
        diag_hint(d, "'%s' is a block: use {name: ..., block: %s} or {name: ..., stage: %s, "
                     "repeat: N}", at->text, at->text, at->text);
        return;
    }
    const char *names[OP_KIND_COUNT];
    for (int k = 0; k < OP_KIND_COUNT; k++) names[k] = op_table[k]->name;
    const char *best = diag_closest(at->text, names, OP_KIND_COUNT);
    char list[512];
    list_words(list, sizeof list, names, OP_KIND_COUNT);
    if (best)
        diag_hint(d, "did you mean '%s'?", best);
    else
        diag_hint(d, "the ops: %s", list);
}

/* An op item: `relu` or {name: conv1, op: conv, out: 64, ...}. */
static struct flow expand_op(struct builder *b, struct diag *d, const struct node *item,
                             const struct node *opn, const struct node *args,
                             const struct node *namen, struct scope *sc, const struct flow *in,
                             int nin, const char *hint)
{
    struct flow bad = {GRAPH_INPUT, {0}};
    if (!opn) {
        diag_error(d, item->mark, "a block's join starts with an op that joins two paths: add");
        return bad;
    }
    if (!scalar_text(opn)) {
        diag_error(d, opn->mark, "'op' must be an op name, got %s", node_describe(b->a, opn));
        return bad;
    }
    enum op_kind k = op_find(opn->text);
    if (k == OP_KIND_COUNT) {
        unknown_op(b, d, opn);
        return bad;
    }
    const struct op_def *op = op_table[k];
    if (op->arity != nin) {
        if (op->arity == 2)
            diag_error(d, opn->mark, "'%s' joins a block's two paths: use it first in a block's "
                       "join", op->name);
        else
            diag_error(d, opn->mark, "a block's join starts with an op that joins two paths "
                       "(add), not '%s'", op->name);
        return bad;
    }
    const char *name = namen ? full_name(b, sc, namen->text)
                             : full_name(b, sc, arena_printf(b->a, "%s_%d", op->name,
                                                             ++sc->counts[k]));
    union op_params p;
    memset(&p, 0, sizeof p);
    if (args && args->n && !op->params->nkeys) {
        diag_error(d, args->keys[0]->mark, "op '%s' has no settings, got '%s'", op->name,
                   args->keys[0]->text);
        return bad;
    }
    if (validate_keys(b->a, d, op->params, name, item->mark, args, &p)) return bad;
    return add_layer(b, d, item, name, k, &p, in, nin, hint);
}

static struct flow expand_list(struct builder *b, const struct node *list, struct scope *sc,
                               const struct env *env, struct flow in);

/* One instance of a block, named prefix; args are its arguments, already evaluated. */
static struct flow instantiate(struct builder *b, struct diag *d, const struct node *item,
                               const struct block_def *def, const struct node *args,
                               const char *prefix, struct flow in, bool first)
{
    struct flow bad = {GRAPH_INPUT, {0}};
    for (int i = 0; i < b->depth; i++)
        if (b->stack[i] == def) {
            diag_error(d, item->mark, "block '%s' uses itself", def->name);
            return bad;
        }
    if (b->depth == GRAPH_MAX_DEPTH) {
        diag_error(d, item->mark, "blocks nest deeper than %d", GRAPH_MAX_DEPTH);
        return bad;
    }
    const struct node **values = arena_alloc(b->a, (def->nparams + 1) * sizeof *values);
    const char **meant = arena_alloc(b->a, (args->n + 1) * sizeof *meant); /* typo -> param */
    bool ok = true;
    for (size_t i = 0; i < args->n; i++) {
        const struct node *key = args->keys[i];
        size_t idx = def->nparams;
        for (size_t j = 0; j < def->nparams; j++)
            if (strcmp(def->params[j], key->text) == 0) idx = j;
        if (idx == def->nparams) {
            diag_error(d, key->mark, "block '%s' has no parameter '%s'", def->name, key->text);
            const char *best = diag_closest(key->text, def->params, def->nparams);
            char list[256];
            list_words(list, sizeof list, def->params, def->nparams);
            if (best)
                diag_hint(d, "did you mean '%s'?", best);
            else
                diag_hint(d, "its parameters: %s", def->nparams ? list : "none");
            meant[i] = best;
            ok = false;
            continue;
        }
        values[idx] = args->items[i];
        /* A stage's stride is its first block's; the others keep the resolution. */
        if (!first && strcmp(key->text, "stride") == 0)
            values[idx] = node_scalar(b->a, args->items[i]->mark, "1", true);
    }
    for (size_t j = 0; j < def->nparams; j++) {
        if (values[j]) continue;
        values[j] = def->defaults[j];
        bool typo = false; /* reported already as a misspelt argument */
        for (size_t i = 0; i < args->n; i++) typo |= meant[i] && strcmp(meant[i], def->params[j]) == 0;
        if (!values[j] && !typo) {
            diag_error(d, item->mark, "block '%s' needs the parameter '%s'", def->name,
                       def->params[j]);
            ok = false;
        }
    }
    if (!ok) return bad;

    struct env env = {def, values};
    struct scope sc = {.prefix = prefix};
    b->stack[b->depth++] = def;
    struct flow body = expand_list(b, def->body, &sc, &env, in);
    struct flow out = body;
    if (def->join) {
        struct flow paths[2] = {body, in};
        const char *hint = NULL;
        char sb[SHAPE_TEXT], si[SHAPE_TEXT], hb[256];
        bool known = body.s.rank && in.s.rank;
        if (known && !shape_equal(&body.s, &in.s)) {
            if (def->shortcut) {
                paths[1] = expand_list(b, def->shortcut, &sc, &env, in);
                snprintf(hb, sizeof hb, "the body gives %s, the shortcut %s",
                         shape_format(&body.s, sb, sizeof sb),
                         shape_format(&paths[1].s, si, sizeof si));
            } else {
                snprintf(hb, sizeof hb, "the body changes %s into %s and block '%s' has no "
                         "shortcut to match it", shape_format(&in.s, si, sizeof si),
                         shape_format(&body.s, sb, sizeof sb), def->name);
            }
            hint = hb;
        } else if (!known) {
            paths[1].s = (struct shape){0};
        }
        const struct node *j0 = def->join->items[0];
        struct diag quiet;
        struct diag *jd = item_diag(b, j0, &quiet);
        int before = jd->errors;
        if (j0->kind == NODE_SCALAR)
            out = expand_op(b, jd, j0, j0, NULL, NULL, &sc, paths, 2, hint);
        else
            out = expand_op(b, jd, j0, node_map_get(j0, "op", NULL), item_args(b, jd, j0, def, &env),
                            node_map_get(j0, "name", NULL), &sc, paths, 2, hint);
        item_done(b, j0, jd, before);
        struct node rest = *def->join;
        rest.items++;
        rest.n--;
        out = expand_list(b, &rest, &sc, &env, out);
    }
    b->depth--;
    return out;
}

/* A block or stage item: {name: layer1, stage: bottleneck, repeat: 3, width: 64, stride: 2}. */
static struct flow expand_blocks(struct builder *b, struct diag *d, const struct node *item,
                                 const struct node *which, bool stage, const struct node *namen,
                                 struct scope *sc, const struct env *env, struct flow in)
{
    struct flow bad = {GRAPH_INPUT, {0}};
    const char *kind = stage ? "stage" : "block";
    if (!scalar_text(which)) {
        diag_error(d, which->mark, "'%s' must be a block name, got %s", kind,
                   node_describe(b->a, which));
        return bad;
    }
    const struct block_def *def = find_block(b, which->text);
    if (!def) {
        diag_error(d, which->mark, "unknown block '%s'", which->text);
        const char **names = arena_alloc(b->a, (b->ndefs + 1) * sizeof *names);
        for (size_t i = 0; i < b->ndefs; i++) names[i] = b->defs[i].name;
        const char *best = diag_closest(which->text, names, b->ndefs);
        char list[256];
        list_words(list, sizeof list, names, b->ndefs);
        if (op_find(which->text) != OP_KIND_COUNT)
            diag_hint(d, "'%s' is an op: use {op: %s}", which->text, which->text);
        else if (best)
            diag_hint(d, "did you mean '%s'?", best);
        else
            diag_hint(d, b->ndefs ? "the blocks: %s" : "no blocks are defined (blocks: ...)%s",
                      b->ndefs ? list : "");
        return bad;
    }
    if (!def->ok) return bad; /* its definition's errors are reported */
    if (!namen) {
        diag_error(d, item->mark, "a %s needs a name (its layers are called NAME%s.LAYER)", kind,
                   stage ? ".N" : "");
        return bad;
    }
    long long repeat = 1;
    const struct node *rkey, *rn = node_map_get(item, "repeat", (struct node **)&rkey);
    if (!stage && rn) {
        diag_error(d, rkey->mark, "'repeat' is for stages: use {stage: %s, repeat: N}", def->name);
        return bad;
    }
    if (stage && !rn) {
        diag_error(d, item->mark, "stage '%s' needs 'repeat' (how many blocks)", namen->text);
        return bad;
    }
    const char *name = full_name(b, sc, namen->text);
    if (stage) {
        static const struct schema_key rk[] = {
            {.name = "repeat", .type = SCHEMA_INT, .flags = SK_MIN | SK_MAX, .min = 1,
             .max = 10000, .doc = "blocks in the stage"}};
        static const struct schema_section rs = {.name = "stage", .keys = rk, .nkeys = 1};
        struct expr_scope es = scope_of(b, env ? env->def : NULL, env);
        const struct node *r = expr_subst(b->a, d, rn, &es);
        if (!r) return bad;
        struct node *m = node_map(b->a, item->mark);
        node_map_set(b->a, m, (struct node *)rkey, (struct node *)r);
        if (validate_keys(b->a, d, &rs, name, item->mark, m, &repeat)) return bad;
    }
    const struct node *args = item_args(b, d, item, env ? env->def : NULL, env);
    if (!args) return bad;
    struct flow x = in;
    for (long long i = 0; i < repeat; i++) {
        const char *prefix = stage ? arena_printf(b->a, "%s.%lld", name, i) : name;
        x = instantiate(b, d, item, def, args, prefix, x, i == 0);
        if ((!x.s.rank && x.layer == GRAPH_INPUT) || b->too_big) return x;
    }
    return x;
}

static struct flow expand_item(struct builder *b, const struct node *item, struct scope *sc,
                               const struct env *env, struct flow in)
{
    struct flow bad = {GRAPH_INPUT, {0}};
    struct diag quiet;
    struct diag *d = item_diag(b, item, &quiet);
    int before = d->errors;
    struct flow out = bad;
    if (item->kind == NODE_SCALAR && scalar_text(item)) {
        out = expand_op(b, d, item, item, NULL, NULL, sc, &in, 1, NULL);
    } else if (item->kind != NODE_MAP) {
        diag_error(d, item->mark, "a layer must be an op name or a mapping, got %s",
                   node_describe(b->a, item));
        diag_hint(d, "e.g. - relu, or - {name: conv1, op: conv, out: 64, kernel: 3}");
    } else {
        struct node *namek;
        const struct node *namen = node_map_get(item, "name", &namek);
        const struct node *opn = node_map_get(item, "op", NULL);
        const struct node *blk = node_map_get(item, "block", NULL);
        const struct node *stg = node_map_get(item, "stage", NULL);
        int kinds = (opn != NULL) + (blk != NULL) + (stg != NULL);
        if (namen && (!scalar_text(namen) || !valid_name(namen->text))) {
            diag_error(d, namen->mark, "'name' must be letters, digits and '_' in parts joined "
                       "by '.', got %s", node_describe(b->a, namen));
        } else if (kinds != 1) {
            diag_error(d, item->mark, kinds ? "a layer has one of 'op', 'block' and 'stage'"
                                            : "a layer needs 'op', 'block' or 'stage'");
            diag_hint(d, "e.g. {name: conv1, op: conv, out: 64, kernel: 3} or {name: layer1, "
                         "stage: bottleneck, repeat: 3, ...}");
        } else if (opn) {
            const struct node *rk = NULL;
            node_map_get(item, "repeat", (struct node **)&rk);
            if (rk) {
                diag_error(d, rk->mark, "'repeat' is for stages of blocks, not ops");
            } else {
                const struct node *args = item_args(b, d, item, env ? env->def : NULL, env);
                if (args) out = expand_op(b, d, item, opn, args, namen, sc, &in, 1, NULL);
            }
        } else {
            out = expand_blocks(b, d, item, blk ? blk : stg, stg != NULL, namen, sc, env, in);
        }
    }
    item_done(b, item, d, before);
    return out;
}

static struct flow expand_list(struct builder *b, const struct node *list, struct scope *sc,
                               const struct env *env, struct flow in)
{
    for (size_t i = 0; i < list->n; i++) {
        in = expand_item(b, list->items[i], sc, env, in);
        if (b->d->errors >= 20 || b->too_big) break;
    }
    return in;
}

/* --------------------------------------------------------------------------------------- */
/* Block definitions */

static bool check_list(struct builder *b, const struct node *v, const char *what)
{
    if (v->kind == NODE_SEQ && v->n) return true;
    diag_error(b->d, v->mark, "'%s' must be a non-empty list of layers, got %s", what,
               node_describe(b->a, v));
    return false;
}

/* The op an item names, when it is an op item with a known op; OP_KIND_COUNT otherwise. */
static enum op_kind item_op(const struct node *item, const struct node **at)
{
    const struct node *opn = item->kind == NODE_MAP ? node_map_get(item, "op", NULL) : item;
    *at = opn;
    return scalar_text(opn) ? op_find(opn->text) : OP_KIND_COUNT;
}

/* Ops joining two paths come first in a join and nowhere else. */
static void check_arity(struct builder *b, const struct node *list, bool join)
{
    for (size_t i = 0; list && i < list->n; i++) {
        const struct node *at;
        enum op_kind k = item_op(list->items[i], &at);
        bool first = join && i == 0;
        if (k == OP_KIND_COUNT && scalar_text(at)) continue; /* unknown op: said where used */
        if (first && (k == OP_KIND_COUNT || op_table[k]->arity != 2)) {
            diag_error(b->d, (at ? at : list->items[i])->mark,
                       "a block's join starts with an op that joins two paths: add");
            if (k != OP_KIND_COUNT) diag_hint(b->d, "e.g. join: [add, %s]", op_table[k]->name);
        } else if (!first && k != OP_KIND_COUNT && op_table[k]->arity == 2) {
            diag_error(b->d, at->mark, "'%s' joins a block's two paths: use it first in the "
                       "block's join", op_table[k]->name);
        }
    }
}

/* Checks the $expressions in a block's layers: syntax and names, once for every use. */
static void check_exprs(struct builder *b, const struct block_def *def, const struct node *list)
{
    for (size_t i = 0; list && i < list->n; i++) {
        const struct node *item = list->items[i];
        if (item->kind != NODE_MAP) continue;
        int before = b->d->errors;
        const struct node *r = node_map_get(item, "repeat", NULL);
        struct expr_scope es = scope_of(b, def, NULL);
        if (r) (void)expr_subst(b->a, b->d, r, &es);
        (void)item_args(b, b->d, item, def, NULL);
        item_done(b, item, b->d, before);
    }
}

static void define_block(struct builder *b, struct block_def *def, const struct node *key,
                         const struct node *v)
{
    static const char *const keys[] = {"params", "body", "shortcut", "join"};
    static const char *const reserved[] = {"name", "op", "block", "stage", "repeat"};
    *def = (struct block_def){.name = key->text, .key = key};
    int before = b->d->errors;
    if (!valid_name(key->text) || strchr(key->text, '.'))
        diag_error(b->d, key->mark, "a block name must be letters, digits and '_', got '%s'",
                   key->text);
    if (v->kind != NODE_MAP) {
        diag_error(b->d, v->mark, "block '%s' must be a mapping (params, body, shortcut, join), "
                   "got %s", key->text, node_describe(b->a, v));
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        const char *k = v->keys[i]->text;
        bool known = false;
        for (size_t j = 0; j < ARRAY_LEN(keys); j++) known |= strcmp(k, keys[j]) == 0;
        if (known) continue;
        diag_error(b->d, v->keys[i]->mark, "unknown key '%s' in block '%s'", k, key->text);
        const char *best = diag_closest(k, keys, ARRAY_LEN(keys));
        if (best)
            diag_hint(b->d, "did you mean '%s'?", best);
        else
            diag_hint(b->d, "a block has: params, body, shortcut, join");
    }
    struct node *pk;
    const struct node *params = node_map_get(v, "params", &pk);
    if (params && params->kind != NODE_SCALAR) {
        def->nparams = params->n;
        def->params = arena_alloc(b->a, (params->n + 1) * sizeof *def->params);
        def->defaults = arena_alloc(b->a, (params->n + 1) * sizeof *def->defaults);
        for (size_t i = 0; i < params->n; i++) {
            const struct node *p = params->kind == NODE_SEQ ? params->items[i] : params->keys[i];
            if (params->kind == NODE_MAP) {
                /* A default may use the globals: {out: $classes}. */
                struct expr_scope top = scope_of(b, NULL, NULL);
                def->defaults[i] = expr_subst(b->a, b->d, params->items[i], &top);
                if (!def->defaults[i]) def->defaults[i] = params->items[i];
            }
            def->params[i] = p->text;
            bool ok = scalar_text(p) && p->len && expr_is_ident(p->text[0], true);
            for (size_t c = 1; ok && c < p->len; c++) ok = expr_is_ident(p->text[c], false);
            if (!ok) {
                diag_error(b->d, p->mark, "a parameter name must be letters, digits and '_', "
                           "got %s", node_describe(b->a, p));
                def->params[i] = "";
                continue;
            }
            for (size_t r = 0; r < ARRAY_LEN(reserved); r++)
                if (strcmp(p->text, reserved[r]) == 0)
                    diag_error(b->d, p->mark, "'%s' cannot be a parameter name: it is a key of "
                               "block items", p->text);
            for (size_t g = 0; g < ARRAY_LEN(b->globals); g++)
                if (strcmp(p->text, b->globals[g].name) == 0)
                    diag_error(b->d, p->mark, "'%s' cannot be a parameter name: $%s is the "
                               "data's class count in every block", p->text, p->text);
            for (size_t j = 0; j < i; j++)
                if (strcmp(def->params[j], p->text) == 0)
                    diag_error(b->d, p->mark, "parameter '%s' is declared twice", p->text);
        }
    } else if (params && !node_is_null(params)) {
        diag_error(b->d, params->mark, "'params' must be a list of names or a mapping of names "
                   "to defaults, got %s", node_describe(b->a, params));
    }
    struct node *k;
    def->body = node_map_get(v, "body", &k);
    if (!def->body) {
        diag_error(b->d, key->mark, "block '%s' has no body", key->text);
        diag_hint(b->d, "body: [layers...] is what the block computes");
    } else if (!check_list(b, def->body, "body")) {
        def->body = NULL;
    }
    def->shortcut = node_map_get(v, "shortcut", &k);
    if (def->shortcut && !check_list(b, def->shortcut, "shortcut")) def->shortcut = NULL;
    def->join = node_map_get(v, "join", NULL);
    if (def->join && !check_list(b, def->join, "join")) def->join = NULL;
    if (def->shortcut && !def->join && !node_map_get(v, "join", NULL)) {
        diag_error(b->d, k->mark, "block '%s' has a shortcut but no join", key->text);
        diag_hint(b->d, "add join: [add, relu] (the sum of the body and the shortcut)");
    }
    check_arity(b, def->body, false);
    check_arity(b, def->shortcut, false);
    check_arity(b, def->join, true);
    check_exprs(b, def, def->body);
    check_exprs(b, def, def->shortcut);
    check_exprs(b, def, def->join);
    def->ok = b->d->errors == before && def->body;
}

/* --------------------------------------------------------------------------------------- */
/* The graph file */

static bool read_input(struct builder *b, const struct node *n, struct shape *s)
{
    bool ok = n->kind == NODE_SEQ && n->n == 3;
    for (size_t i = 0; ok && i < 3; i++) {
        const struct node *e = n->items[i];
        ok = e->kind == NODE_SCALAR && e->plain && node_text_is_int(e->text);
        long long x = ok ? strtoll(e->text, NULL, 10) : 0;
        ok = ok && x >= 1 && x <= 1000000;
        s->d[i] = x;
    }
    if (!ok) {
        diag_error(b->d, n->mark, "'input' must be [C, H, W], three integers >= 1, got %s",
                   node_describe(b->a, n));
        return false;
    }
    s->rank = 3;
    return true;
}

static void totals(struct graph *g)
{
    for (size_t i = 0; i < g->nlayers; i++) g->macs += g->layers[i].macs;
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct op_tensor *t = &g->tensors[i].t;
        if (t->role == TENSOR_PARAM) {
            g->nparams += op_tensor_numel(t);
            g->nparam_tensors++;
        } else {
            g->nbuffers += op_tensor_numel(t);
            g->nbuffer_tensors++;
        }
    }
}

enum status graph_build_for(const struct node *tree, const struct shape *data_input, int classes,
                            struct diag *d, struct graph **out)
{
    *out = NULL;
    struct graph *g = calloc(1, sizeof *g);
    if (!g) return STATUS_RUNTIME;
    struct builder b = {.g = g, .a = &g->arena, .d = d};
    b.globals[0] = (struct expr_global){
        .name = "classes", .bound = classes > 0, .value = classes,
        .unbound = "it is the class count of the experiment's data, and a graph file checked "
                   "on its own has no $classes"};
    int before = d->errors;
    bool unknown = false;
    static const char *const top[] = {"input", "blocks", "graph"};
    for (size_t i = 0; i < tree->n; i++) {
        bool known = false;
        for (size_t j = 0; j < ARRAY_LEN(top); j++) known |= strcmp(tree->keys[i]->text, top[j]) == 0;
        if (known) continue;
        unknown = true;
        diag_error(d, tree->keys[i]->mark, "unknown key '%s' in the graph file",
                   tree->keys[i]->text);
        const char *best = diag_closest(tree->keys[i]->text, top, ARRAY_LEN(top));
        if (best)
            diag_hint(d, "did you mean '%s'?", best);
        else
            diag_hint(d, "a graph file has: input, blocks, graph");
    }

    struct node *ik;
    const struct node *input = node_map_get(tree, "input", &ik);
    struct shape in = {0};
    if (input && read_input(&b, input, &in) && data_input && data_input->rank &&
        !shape_equal(&in, data_input)) {
        char a[SHAPE_TEXT], c[SHAPE_TEXT];
        diag_error(d, input->mark, "the graph takes %s images but the data gives %s",
                   shape_format(&in, a, sizeof a), shape_format(data_input, c, sizeof c));
        diag_hint(d, "resize the images in augment (e.g. - resize: {size: %lld}) or change "
                     "the graph's input", (long long)in.d[1]);
    }
    if (!input && data_input && data_input->rank) in = *data_input;
    if (!input && !(data_input && data_input->rank) && !unknown) {
        diag_error(d, tree->mark, "missing required key 'input' in the graph file");
        diag_hint(d, "input: [3, 32, 32] (channels, height, width)");
    }
    g->input = in;

    struct node *bk;
    const struct node *blocks = node_map_get(tree, "blocks", &bk);
    if (blocks && blocks->kind == NODE_MAP) {
        b.ndefs = blocks->n;
        b.defs = arena_alloc(b.a, (blocks->n + 1) * sizeof *b.defs);
        for (size_t i = 0; i < blocks->n; i++)
            define_block(&b, &b.defs[i], blocks->keys[i], blocks->items[i]);
    } else if (blocks && !node_is_null(blocks)) {
        diag_error(d, blocks->mark, "'blocks' must be a mapping of block names to blocks, got %s",
                   node_describe(b.a, blocks));
    }

    struct node *gk;
    const struct node *list = node_map_get(tree, "graph", &gk);
    if (!list && !unknown) {
        diag_error(d, tree->mark, "missing required key 'graph' in the graph file");
        diag_hint(d, "graph: [layers...] lists the network's layers in order");
    } else if (!list) {
    } else if (list->kind != NODE_SEQ || !list->n) {
        diag_error(d, list->mark, "'graph' must be a non-empty list of layers, got %s",
                   node_describe(b.a, list));
    } else if (d->errors == before) {
        struct scope sc = {.prefix = ""};
        struct flow x = expand_list(&b, list, &sc, NULL, (struct flow){GRAPH_INPUT, in});
        g->output = x.layer;
        if (!b.failed && x.s.rank != 1) {
            char sb[SHAPE_TEXT];
            diag_error(d, list->items[list->n - 1]->mark, "the graph ends in %s; a classifier "
                       "ends in a vector of class scores", shape_format(&x.s, sb, sizeof sb));
            diag_hint(d, "end with global_avg_pool (or flatten) and {op: linear, out: $classes}");
        }
    }
    free(b.seen);
    free(b.slots);
    if (d->errors != before || b.failed) {
        graph_free(g);
        return STATUS_CONFIG;
    }
    totals(g);
    *out = g;
    return STATUS_OK;
}

enum status graph_build(const struct node *tree, const struct shape *data_input, struct diag *d,
                        struct graph **out)
{
    return graph_build_for(tree, data_input, 0, d, out);
}

void graph_free(struct graph *g)
{
    if (!g) return;
    free(g->layers);
    free(g->tensors);
    arena_free(&g->arena);
    free(g);
}

const struct shape *graph_input_shape(const struct graph *g, const struct graph_layer *l, int i)
{
    return l->in[i] == GRAPH_INPUT ? &g->input : &g->layers[l->in[i]].out;
}

const struct graph_tensor *graph_find_tensor(const struct graph *g, const char *name)
{
    for (size_t i = 0; i < g->ntensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

void graph_write_markdown(FILE *out)
{
    fputs("### Graph files\n\n"
          "`model.graph` names a graph file (or holds one inline). C knows ops; blocks, "
          "stages and whole networks are written here.\n\n"
          "| key | meaning |\n|---|---|\n"
          "| `input` | `[C, H, W]` of one image; optional (the data decides), checked against "
          "the data when written |\n"
          "| `blocks` | named blocks: `NAME: {params, body, shortcut, join}` |\n"
          "| `graph` | **required**: the layers in order |\n\n"
          "A block has `params` (a list of names, or a mapping of names to defaults), a "
          "`body` (layers), and optionally a `join` (layers; the first joins two paths: "
          "`add`) with a `shortcut` (layers) that is used only where the body changes the "
          "shape (the identity otherwise).\n\n"
          "A layer is one of:\n\n"
          "| form | meaning |\n|---|---|\n"
          "| `relu` | an op without settings |\n"
          "| `{name: N, op: OP, key: value, ...}` | an op with its settings (below); `name` "
          "is optional: unnamed layers are called `OP_1`, `OP_2`, ... |\n"
          "| `{name: N, block: B, param: value, ...}` | one block; its layers are `N.LAYER` |\n"
          "| `{name: N, stage: B, repeat: R, param: value, ...}` | R blocks, `N.0` to "
          "`N.R-1`; `stride` goes to the first block only, the others get 1 |\n\n"
          "Inside a block, settings and arguments may use its parameters: `$width`, "
          "`$width * 4`, `($c + 1) // 2` (`+ - * / // %` and parentheses; integers stay "
          "integers, `/` gives a number when it does not divide). Names nest with `.`: "
          "`layer1.0.conv1.weight` is a parameter of the first block of stage `layer1`.\n\n"
          "`$classes` is the number of classes of the experiment's data (`cifar10`: 10), "
          "everywhere in the file: at the top level, in blocks and in parameters' defaults "
          "(`{name: fc, op: linear, out: $classes}`, `out: $classes * 2`). No block parameter "
          "may be called `classes`.\n\n",
          out);
    op_write_markdown(out);
}
