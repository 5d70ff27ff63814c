/* ticket.h - where an answer goes, and what it says.
 *
 * A ticket is taken when a request arrives (an HTTP request that defers its
 *   answer, a WebSocket client message) and travels with the work to other
 *   shards and back; the answer is then written through the connection with
 *   rc_conn_answer(c, &ticket, &answer), so the modules that compute answers
 *   (broker, history, presence, the store glue) never format HTTP, WebSocket
 *   or SSE themselves.
 * Owner: plain values, copied (never shared) by whoever holds the work; a
 *   ticket holds no pointer, so it may cross threads inside a post.
 * Fields:
 *   conn_id  the connection waiting (its shard looks it up; gone = dropped)
 *   serial   RC_TICKET_HTTP: the deferred answer's slot (http.h); 0 = nobody
 *            waits, the answer is dropped
 *   kind     enum rc_ticket_kind: RC_TICKET_NONE drops the answer;
 *            RC_TICKET_WS: a WebSocket message, echoing req_id;
 *            RC_TICKET_SSE: a record on the stream, naming the subscription
 *            in req_id (error records);
 *            RC_TICKET_HTTP_PART: one part of a deferred HTTP answer made of
 *            several (a batch of publishes, http.h rc_http_defer_parts):
 *            serial is the answer's slot, req_id the part's index (digits)
 *   req_id   RC_TICKET_WS: a compact copy of the client's request id (a json_t
 *            may not cross threads): req_id_len 0 = none; req_id[0] == '"': a
 *            string whose raw bytes follow (at most 64, docs/PROTOCOL.md);
 *            else the decimal digits of an integer id.
 *            RC_TICKET_SSE: the subscription id the record names ("" = none).
 * An answer is either an error (code set: status, code, msg) or a result
 *   (type, json[0..len): HTTP body / WebSocket "data" / SSE record data,
 *   status, extra_headers and content_type for HTTP; json may then be other
 *   text, e.g. /metrics). Its strings are borrowed for the call. */
#ifndef RINGCAST_TICKET_H
#define RINGCAST_TICKET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum rc_ticket_kind {
    RC_TICKET_NONE,
    RC_TICKET_HTTP,
    RC_TICKET_WS,
    RC_TICKET_SSE,
    RC_TICKET_HTTP_PART
};

/* RC_MSG_MAX_ID (64) bytes of a string id plus its '"' mark */
#define RC_TICKET_REQ_ID_MAX 65

struct rc_ticket {
    uint64_t conn_id;
    uint32_t serial;
    uint8_t kind;
    char req_id[RC_TICKET_REQ_ID_MAX];
    uint8_t req_id_len;
};

struct rc_answer {
    int status;                /* HTTP status; ignored by WebSocket and SSE */
    const char *code;          /* an error: its code ... */
    const char *msg;           /* ... and message */
    const char *type;          /* a result: WebSocket message type / SSE event name */
    const char *json;          /* a result: JSON text (NULL = none) */
    size_t len;                /* of json */
    const char *extra_headers; /* HTTP: "Name: value\r\n..." or NULL */
    const char *content_type;  /* HTTP: of the result; NULL = application/json */
};

#ifdef __cplusplus
}
#endif
#endif /* RINGCAST_TICKET_H */
