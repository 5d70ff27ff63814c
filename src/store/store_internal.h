/* store_internal.h - private to src/store/store.c and src/store/store_check.c: the one
 * helper both halves of the engine-independent store use.
 * store_check.c holds the pure, stateless parts (payload validation, ISO 8601
 * times, the store_synchronous names); store.c holds the request lifecycle,
 * the storage thread's loop with group commit, and rendering of records.
 * Owner: any thread (nothing here holds state).
 * Invariants: rc_store_arg_uint reads the same paging fields rc_store_check
 *   validated, so on checked args it cannot fail.
 * Lifetimes: nothing is kept past a call. */
#ifndef RINGCAST_STORE_INTERNAL_H
#define RINGCAST_STORE_INTERNAL_H

#include <stdint.h>

#include "ringcast/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Paging number obj[key]: a JSON integer or a decimal string (from a query
 * string), in 1..max. Absent or null gives dflt. Returns 0, or -EINVAL with a
 * 400 err (err may be NULL); *out is dflt on failure. */
int rc_store_arg_uint(const json_t *obj, const char *key, uint32_t dflt, uint32_t max,
                      uint32_t *out, struct rc_err *err);

#ifdef __cplusplus
}
#endif

#endif
