/* topic.h - topic names and subscription patterns: validation, tokenising and
 * a naive reference matcher.
 * Owner: none; pure functions over caller buffers, callable from any thread.
 * Syntax: a topic is 1..RC_TOPIC_MAX_TOKENS tokens separated by single dots,
 *   at most RC_TOPIC_MAX_LEN bytes. A token is non-empty printable ASCII
 *   (0x21..0x7e) and never contains '*' or '>'. A pattern may also use '*' as a
 *   whole token (exactly one token) and '>' as the whole last token (one or
 *   more tokens), NATS style: "a.*.c", "a.>", "*", ">".
 * Lifetimes: rc_topic_split fills slices that point into the caller's buffer. */
#ifndef RINGCAST_TOPIC_H
#define RINGCAST_TOPIC_H

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_TOPIC_MAX_LEN 255
#define RC_TOPIC_MAX_TOKENS 32

enum rc_topic_kind {
    RC_TOPIC_NAME,    /* a concrete topic an event is published to */
    RC_TOPIC_PATTERN, /* a subscription pattern; may use '*' and a last '>' */
};

/* Check s[0..n) against the syntax above. Returns 0, or -EINVAL with err set
 * (status 400, code "bad_topic", message naming the token and its position). */
RC_MUST_CHECK int rc_topic_validate(const char *s, size_t n, enum rc_topic_kind kind,
                                    struct rc_err *err);

/* True when some token of s is exactly "*" or ">" (s need not be valid). */
bool rc_topic_is_pattern(const char *s, size_t n);

/* Split s at dots into at most cap slices (pointing into s). Returns the number
 * of tokens s has (empty tokens included), which may exceed cap: only the first
 * cap are stored. An empty s has one empty token. */
size_t rc_topic_split(const char *s, size_t n, struct rc_slice *tok, size_t cap);

/* Naive reference: does the valid pattern pat match the valid topic name?
 * Token by token, no allocation; O(tokens). Used by tests and as the linear
 * baseline of bench_trie; the shard matches through the trie instead. */
bool rc_topic_match(const char *pat, size_t pn, const char *topic, size_t tn);

/* The shard that owns topic s[0..n) (its sequence numbers, history,
 * presence): xxh3(topic) % nshards. nshards > 0. */
unsigned rc_topic_owner(unsigned nshards, const char *s, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_TOPIC_H */
