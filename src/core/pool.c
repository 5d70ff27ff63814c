/* pool.c - slab-backed free-list pool. See pool.h. */
#include <errno.h>
#include <stdlib.h>

#include "ringcast/pool.h"

struct rc_pool_slab {
    struct rc_pool_slab *next;
    _Alignas(16) unsigned char objs[];
};

void rc_pool_init(struct rc_pool *p, size_t obj_size, size_t per_slab, size_t max_objs)
{
    memset(p, 0, sizeof(*p));
    /* room for the free-list link, 16-byte aligned */
    if (obj_size < sizeof(void *))
        obj_size = sizeof(void *);
    p->obj_size = (obj_size + 15) & ~(size_t)15;
    p->per_slab = per_slab ? per_slab : 64;
    p->max_objs = max_objs;
}

static int grow(struct rc_pool *p)
{
    size_t n = p->per_slab, bytes;
    if (p->max_objs && p->capacity + n > p->max_objs)
        n = p->max_objs - p->capacity;
    if (n == 0)
        return -ENOSPC;
    if (!rc_mul_size(n, p->obj_size, &bytes) ||
        !rc_add_size(bytes, sizeof(struct rc_pool_slab), &bytes))
        return -ENOMEM;
    struct rc_pool_slab *s = malloc(bytes);
    if (!s)
        return -ENOMEM;
    s->next = p->slabs;
    p->slabs = s;
    for (size_t i = n; i-- > 0;) {
        void *o = s->objs + i * p->obj_size;
        *(void **)o = p->free_list;
        p->free_list = o;
    }
    p->capacity += n;
    return 0;
}

void *rc_pool_get(struct rc_pool *p)
{
    if (!p->free_list && grow(p) < 0)
        return NULL;
    void *o = p->free_list;
    p->free_list = *(void **)o;
    p->in_use++;
    memset(o, 0, p->obj_size);
    return o;
}

void rc_pool_put(struct rc_pool *p, void *obj)
{
    if (!obj)
        return;
    *(void **)obj = p->free_list;
    p->free_list = obj;
    p->in_use--;
}

void rc_pool_fini(struct rc_pool *p)
{
    struct rc_pool_slab *s = p->slabs;
    while (s) {
        struct rc_pool_slab *next = s->next;
        free(s);
        s = next;
    }
    memset(p, 0, sizeof(*p));
}
