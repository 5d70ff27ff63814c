/* msg.h - the JSON text messages a WebSocket client sends, and the server's
 * JSON replies to them (docs/PROTOCOL.md, "Client protocol").
 *
 * Owner: the shard that owns the connection. Nothing here keeps global state;
 *   every function is reentrant and may run on any thread.
 *
 * Parsing: rc_msg_parse() takes one complete text message (the WebSocket layer
 *   has already reassembled fragments and validated UTF-8), checks its size and
 *   nesting depth *before* jansson sees it, parses it with jansson and checks
 *   every field the action uses. Unknown fields are ignored (forward
 *   compatible); a field given as JSON null counts as absent (JavaScript
 *   clients send `filter: null`).
 *
 * Lifetime: struct rc_client_msg owns one jansson tree (root). Every other
 *   pointer in it borrows from that tree and dies with rc_msg_fini(). The caller
 *   calls rc_msg_fini() after every rc_msg_parse(), successful or not.
 *
 * Replies: rc_msg_error() / rc_msg_reply() write one compact JSON text into a
 *   caller buffer, never past cap, never allocating for the envelope.
 */
#ifndef RINGCAST_MSG_H
#define RINGCAST_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "ringcast/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Defaults used when a limit in struct rc_msg_limits is 0 (or lim is NULL). */
#define RC_MSG_DEFAULT_MAX_BYTES ((size_t)64 * 1024)
#define RC_MSG_DEFAULT_MAX_DEPTH 32u

/* Field caps (bytes). Checked after parsing; each failure is "bad_value"
 * (or "bad_id" for id). */
#define RC_MSG_MAX_ID 64           /* request id string */
#define RC_MSG_MAX_SUBSCRIPTION 64 /* subscription id (unsubscribe) */
#define RC_MSG_MAX_SINCE 128       /* resume cursor (an event id) */
#define RC_MSG_MAX_EVENT_TYPE 64   /* publish "type" */

enum rc_action {
    RC_ACT_AUTH,        /* {"action":"auth","token":"<jwt>"} */
    RC_ACT_SUBSCRIBE,   /* topic|collection, filter?, since?, include_initial? */
    RC_ACT_UNSUBSCRIBE, /* subscription | topic|collection */
    RC_ACT_PUBLISH,     /* topic|collection, type? (or "event"), data? */
    RC_ACT_PONG,        /* answer to the server's {"type":"ping"} */
    RC_ACT_PING,        /* client-initiated ping; the server answers "pong" */
    RC_ACT_PRESENCE,    /* topic|collection: who is here */
    RC_ACT_MESSAGE,     /* seed 001: {"action":"message","payload":...} or
                           {"type":"message","payload":...} without "action" */
};
#define RC_ACT_COUNT 8

struct rc_msg_limits {
    size_t max_bytes;   /* whole message, checked before jansson; 0 = default */
    unsigned max_depth; /* nesting of arrays/objects, root object = 1, checked
                           before jansson; 0 = default; jansson itself stops at
                           JSON_PARSER_MAX_DEPTH (2048) */
};

struct rc_client_msg {
    enum rc_action action;
    json_t *root; /* owned; freed by rc_msg_fini; every pointer below borrows from it */
    json_t *id;   /* request id to echo: a string (<= RC_MSG_MAX_ID bytes) or an
                     integer; NULL if absent, null, or invalid */
    /* subscribe / unsubscribe / publish / presence: from "topic", or from
     * "collection" (seed 003; via_collection is then true so the answer can
     * say "collection"). Both given and equal is fine; different is an error.
     * NUL-terminated (jansson refuses \u0000), topic_len excludes the NUL.
     * Validated with rc_topic_validate: a pattern for subscribe/unsubscribe,
     * a plain name for publish/presence. unsubscribe may leave it NULL when
     * "subscription" is given. */
    const char *topic;
    size_t topic_len;
    bool via_collection;
    json_t *filter;           /* subscribe: an object, or NULL; compiled elsewhere */
    const char *subscription; /* unsubscribe by id; NULL when by topic */
    const char *since;        /* subscribe: resume cursor (event id), or NULL */
    bool include_initial;     /* subscribe: default false */
    const char *type;         /* publish: event type, "message" by default; 1..64
                                 bytes of printable ASCII without space (from
                                 "type", or "event" as seed 001 names it) */
    json_t *data;             /* publish: any JSON value; json_null() if absent */
    const char *token;        /* auth: non-empty */
    json_t *payload;          /* message: any JSON value (required) */
};

/* Parse one complete text message into out (which need not be initialised).
 * Returns 0, or -EINVAL with err->code one of:
 *   "too_large"      more than max_bytes (status 413)
 *   "too_deep"       arrays/objects nested deeper than max_depth
 *   "bad_json"       not JSON (msg has jansson's line/column and reason), or
 *                    not an object, or a duplicated key
 *   "bad_id"         id is not a string <= RC_MSG_MAX_ID bytes or an integer
 *   "missing_field"  names the field: `subscribe needs "topic" (or "collection")`
 *   "bad_type"       `"include_initial" must be a boolean, got string`
 *   "bad_value"      right type, wrong value: empty or too long, bad event
 *                    type characters, "topic" and "collection" that differ
 *   "unknown_action" `unknown action "subscrbe"; known: auth subscribe ...`
 *   "bad_topic"      from rc_topic_validate
 * All have status 400 except too_large. Client text quoted in messages is
 * cut at 32 bytes with control characters shown as '?'.
 * Once the id was read, out->id (and out->root) stay set on failure so that
 * the error reply can echo it: call rc_msg_fini() in every case. */
RC_MUST_CHECK int rc_msg_parse(const char *buf, size_t len, const struct rc_msg_limits *lim,
                               struct rc_client_msg *out, struct rc_err *err);

/* Release the tree and zero *m. Safe on a zeroed or already finished msg. */
void rc_msg_fini(struct rc_client_msg *m);

/* "auth", "subscribe", ...; "unknown" for a value outside the enum. */
const char *rc_action_name(enum rc_action a);

/* Server replies. Each writes one compact JSON text (no newline, no NUL) at
 * out[0..cap) and returns its length, or -ENOSPC if it does not fit (out then
 * holds a truncated prefix and must not be sent).
 * id: a string or integer json_t echoed as is; NULL (or any other type) means
 *   no "id" key.
 * Strings (type, code, message, a string id) are escaped per RFC 8259: '"',
 *   '\\' and control characters are escaped (\n \r \t \b \f, else \u00XX);
 *   invalid UTF-8 sequences are replaced by U+FFFD, so the output is always
 *   valid UTF-8 JSON. NULL strings are written as "".
 *
 *   rc_msg_error: {"type":"error","data":{"code":C,"message":M,"id":ID}}
 *   rc_msg_reply: {"type":T,"id":ID,"data":DATA}
 * data is dumped with json_dumpb (compact, keys in insertion order); NULL
 * data is written as {}. data must come from our own code or from a message
 * rc_msg_parse accepted (its depth is capped), since jansson's dumper
 * recurses. Returns -EINVAL if jansson cannot encode data. */
RC_MUST_CHECK ssize_t rc_msg_error(char *out, size_t cap, const json_t *id, const char *code,
                                   const char *message);
RC_MUST_CHECK ssize_t rc_msg_reply(char *out, size_t cap, const char *type, const json_t *id,
                                   const json_t *data);

#ifdef __cplusplus
}
#endif

#endif /* RINGCAST_MSG_H */
