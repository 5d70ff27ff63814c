/* client.c - the client flow both transports share (see client.h): the token
 * of a connect request, its verification, the identity on the connection,
 * the subscribe right, the greeting held for durable subscriptions. */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "ringcast/client.h"
#include "ringcast/conn_limit.h"
#include "ringcast/jwt.h"
#include "ringcast/shard.h"

/* Set once by main before the shards start, read-only after. */
static int64_t unix_now(void)
{
    return (int64_t)time(NULL);
}

int rc_client_verify(struct rc_conn *c, const char *tok, size_t len, struct rc_auth_identity **id,
                     struct rc_err *err)
{
    struct rc_shard *s = c->shard;
    if (rc_auth_authenticate(s->srv->auth, tok, len, unix_now(), id, err) < 0) {
        s->ctr.auth_failures++;
        return -EINVAL;
    }
    return 0;
}

int rc_client_connect_identity(struct rc_conn *c, const struct rc_http_request *req,
                               struct rc_auth_identity **id, struct rc_err *err)
{
    /* a token in the URL (?token=) or an Authorization: Bearer header */
    char tokbuf[RC_JWT_MAX_TOKEN + 1];
    size_t toklen = 0;
    struct rc_slice hv;
    *id = NULL;
    int trc = rc_auth_token_from_query(req->query, tokbuf, sizeof(tokbuf), &toklen, err);
    if (trc == 0)
        return rc_client_verify(c, tokbuf, toklen, id, err);
    if (trc == -EINVAL) {
        /* a malformed token parameter: counted like a failed token */
        c->shard->ctr.auth_failures++;
        return -EINVAL;
    }
    const struct rc_http_header *ah = rc_http_find_header(req, "Authorization");
    struct rc_err herr = {0}; /* a header that is not a bearer token: no token */
    if (ah && rc_auth_token_from_header(ah->value, &hv, &herr) == 0)
        return rc_client_verify(c, hv.p, hv.n, id, err);
    return 0;
}

void rc_client_set_identity(struct rc_conn *c, struct rc_auth_identity *id)
{
    rc_auth_identity_free(c->identity);
    c->identity = id;
    c->authenticated = true;
    c->auth_deadline_ms = 0;
    c->expired_notified = false;
    snprintf(c->user_id, sizeof(c->user_id), "%s", id->sub);
    rc_conn_limit_identity(c); /* max_connections_per_user: once per connection */
    c->expire_ms = 0;
    if (id->expires_at != INT64_MAX) {
        int64_t left = id->expires_at - unix_now();
        c->expire_ms = c->shard->now_ms + (uint64_t)(left > 0 ? left * 1000 : 0) + 1;
    }
}

int rc_client_may_subscribe(struct rc_conn *c, const struct rc_auth_identity *id, const char *topic,
                            size_t len, struct rc_err *err)
{
    if (rc_auth_check_subscribe(c->shard->srv->auth, id, topic, len, err) < 0) {
        c->shard->ctr.forbidden++;
        return -EPERM;
    }
    return 0;
}

int rc_client_resume_check(struct rc_conn *c, const char *topic, size_t len,
                           const struct rc_sub_opts *o, struct rc_err *err)
{
    uint64_t after;
    bool stale;
    return rc_broker_resume_check(c->shard, topic, len, o, &after, &stale, err);
}

bool rc_client_hold_greeting(struct rc_conn *c, rc_session_ready_fn ready)
{
    const struct rc_session_hooks *h = rc_session_hooks();
    if (!h->after_auth || !h->after_auth(c, ready))
        return false;
    c->greet_deadline_ms = c->shard->now_ms + h->greet_wait_ms;
    return true;
}

void rc_client_greet_timer(struct rc_conn *c, rc_session_ready_fn ready)
{
    if (c->greet_deadline_ms && c->shard->now_ms >= c->greet_deadline_ms) {
        const struct rc_session_hooks *h = rc_session_hooks();
        if (h->greet_late)
            h->greet_late(c);
        ready(c);
    }
}
