/* pool.h - fixed-size object pool (connections, subscriptions, messages).
 * Owner: exactly one thread (a shard). Objects come from and go back to the
 *   same pool on the same thread; never share a pool across threads.
 * Memory: slabs of `per_slab` objects are allocated on demand and kept until
 *   rc_pool_fini, so steady state allocates nothing. A cap bounds the total.
 * Objects are returned zeroed. */
#ifndef RINGCAST_POOL_H
#define RINGCAST_POOL_H

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rc_pool_slab;

struct rc_pool {
    size_t obj_size;
    size_t per_slab;
    size_t max_objs; /* 0 = unlimited */
    size_t capacity; /* objects in all slabs */
    size_t in_use;
    void *free_list;
    struct rc_pool_slab *slabs;
};

void rc_pool_init(struct rc_pool *p, size_t obj_size, size_t per_slab, size_t max_objs);
/* A zeroed object, or NULL when the cap is reached or memory is exhausted. */
void *rc_pool_get(struct rc_pool *p) RC_MUST_CHECK;
void rc_pool_put(struct rc_pool *p, void *obj);
/* Frees every slab; objects still in use become invalid. */
void rc_pool_fini(struct rc_pool *p);

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_POOL_H */
