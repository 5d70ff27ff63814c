/* test_auth.c - rules parsing (every bad item with its message), first match wins, each
 * subscribe/publish mode with and without identity and claims, pattern coverage and
 * overlap, personal topics, API keys and scopes, token extraction from a URL query and an
 * Authorization header, and authentication with HS256 tokens that the test signs itself
 * with libcrypto's HMAC (not with ringcast code). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ringcast/auth.h"
#include "ringcast/config.h"

#define NOW 1700000000
#define SECRET "0123456789abcdef0123456789abcdef-test-secret"

/* ---- helpers -------------------------------------------------------------------------- */

/* A config with the defaults that matter here (the test does not link the config module). */
static void base_config(struct rc_config *c)
{
    memset(c, 0, sizeof(*c));
    c->anonymous = RC_CONFIG_ANON_SUBSCRIBE;
    c->client_publish = false;
    c->jwt_leeway = 30000;
    strcpy(c->personal_topics, "user.{sub}.>");
    strcpy(c->jwt_secret, SECRET);
}

static struct rc_auth *make_auth(struct rc_config *c, char **rules, size_t n_rules)
{
    struct rc_err err = {0};
    c->rules.items = rules;
    c->rules.n = n_rules;
    struct rc_auth *a = rc_auth_new(c, &err);
    if (!a)
        fail_msg("rc_auth_new: %s", err.msg);
    return a;
}

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = abc[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = abc[v & 63];
    }
    out[o] = '\0';
}

/* An HS256 token for the claims JSON, signed with libcrypto's HMAC. */
static void sign_hs256(const char *claims, char *out, size_t cap)
{
    const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char h64[128], c64[1024], s64[64];
    unsigned char mac[32];
    unsigned int maclen = 0;
    char input[1200];

    b64url((const unsigned char *)hdr, strlen(hdr), h64);
    b64url((const unsigned char *)claims, strlen(claims), c64);
    snprintf(input, sizeof(input), "%s.%s", h64, c64);
    assert_non_null(HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)input,
                         strlen(input), mac, &maclen));
    b64url(mac, maclen, s64);
    snprintf(out, cap, "%s.%s", input, s64);
}

static struct rc_auth_identity *login(struct rc_auth *a, const char *claims)
{
    char tok[2048];
    struct rc_err err = {0};
    struct rc_auth_identity *id = NULL;

    sign_hs256(claims, tok, sizeof(tok));
    if (rc_auth_authenticate(a, tok, strlen(tok), NOW, &id, &err) != 0)
        fail_msg("authenticate: %s", err.msg);
    return id;
}

static int sub(const struct rc_auth *a, const struct rc_auth_identity *id, const char *t,
               struct rc_err *err)
{
    return rc_auth_check_subscribe(a, id, t, strlen(t), err);
}

static int pub(const struct rc_auth *a, const struct rc_auth_identity *id, const char *t,
               struct rc_err *err)
{
    return rc_auth_check_publish(a, id, t, strlen(t), err);
}

static void expect_forbidden(int rc, const struct rc_err *err, const char *msg)
{
    assert_int_equal(rc, -EACCES);
    assert_int_equal(err->status, 403);
    assert_string_equal(err->code, "forbidden");
    assert_string_equal(err->msg, msg);
}

/* ---- rules parsing -------------------------------------------------------------------------- */

static int parse(const char *text, struct rc_auth_rule *r, struct rc_err *err)
{
    return rc_auth_rule_parse(text, strlen(text), 3, r, err);
}

static void test_auth_rule_parses_every_setting(void **state)
{
    (void)state;
    struct rc_auth_rule r;
    struct rc_err err = {0};
    assert_int_equal(parse("chat.*.> subscribe=claim publish=authenticated presence=true "
                           "history_size=100 history_ttl=10m retain=false max_subscribers=5000",
                           &r, &err),
                     0);
    assert_string_equal(r.pattern, "chat.*.>");
    assert_int_equal(r.pattern_len, 8);
    assert_int_equal(r.index, 3);
    assert_int_equal(r.subscribe, RC_AUTH_SUB_CLAIM);
    assert_int_equal(r.publish, RC_AUTH_PUB_AUTHENTICATED);
    assert_true(r.presence);
    assert_false(r.retain);
    assert_int_equal(r.history_size, 100);
    assert_int_equal(r.history_ttl_ms, 600000);
    assert_int_equal(r.max_subscribers, 5000);
    assert_int_equal(r.set, RC_AUTH_RULE_PRESENCE | RC_AUTH_RULE_HISTORY_SIZE |
                                RC_AUTH_RULE_HISTORY_TTL | RC_AUTH_RULE_RETAIN |
                                RC_AUTH_RULE_MAX_SUBSCRIBERS);
}

static void test_auth_rule_defaults_when_settings_are_absent(void **state)
{
    (void)state;
    struct rc_auth_rule r;
    struct rc_err err = {0};
    assert_int_equal(parse("\t news.>  \t", &r, &err), 0);
    assert_string_equal(r.pattern, "news.>");
    assert_int_equal(r.subscribe, RC_AUTH_SUB_DEFAULT);
    assert_int_equal(r.publish, RC_AUTH_PUB_DEFAULT);
    assert_int_equal(r.set, 0);
}

static void test_auth_rule_parses_each_mode_word(void **state)
{
    (void)state;
    struct rc_auth_rule r;
    struct rc_err err = {0};
    assert_int_equal(parse("a subscribe=anonymous publish=none", &r, &err), 0);
    assert_int_equal(r.subscribe, RC_AUTH_SUB_ANONYMOUS);
    assert_int_equal(r.publish, RC_AUTH_PUB_NONE);
    assert_int_equal(parse("a subscribe=authenticated publish=claim", &r, &err), 0);
    assert_int_equal(r.subscribe, RC_AUTH_SUB_AUTHENTICATED);
    assert_int_equal(r.publish, RC_AUTH_PUB_CLAIM);
    assert_int_equal(parse("a subscribe=none history_ttl=0", &r, &err), 0);
    assert_int_equal(r.subscribe, RC_AUTH_SUB_NONE);
    assert_int_equal(r.history_ttl_ms, 0);
}

static void expect_bad_rule(const char *text, const char *msg)
{
    struct rc_auth_rule r;
    struct rc_err err = {0};
    assert_int_equal(parse(text, &r, &err), -EINVAL);
    assert_string_equal(err.code, "bad_config");
    assert_string_equal(err.msg, msg);
}

static void test_auth_rule_refuses_each_bad_item(void **state)
{
    (void)state;
    expect_bad_rule("  ", "config: rules item 3: empty rule; write PATTERN key=value ..., e.g. "
                          "\"chat.> subscribe=authenticated\"");
    expect_bad_rule("subscribe=none",
                    "config: rules item 3: must start with a topic pattern, e.g. \"chat.> "
                    "subscribe=none\"");
    expect_bad_rule("a..b subscribe=none",
                    "config: rules item 3: bad pattern: topic \"a..b\": token 2 is empty; "
                    "tokens are separated by single dots");
    expect_bad_rule("a.> subscribe", "config: rules item 3: \"subscribe\" is not key=value; "
                                     "settings are subscribe, publish, presence, history_size, "
                                     "history_ttl, retain, max_subscribers");
    expect_bad_rule("a.> owner=bob",
                    "config: rules item 3: unknown setting \"owner\"; use subscribe, publish, "
                    "presence, history_size, history_ttl, retain or max_subscribers");
    expect_bad_rule("a.> subscribe=none subscribe=claim",
                    "config: rules item 3: subscribe is given twice; give it once");
    expect_bad_rule("a.> subscribe=everyone",
                    "config: rules item 3: subscribe=everyone is not allowed; use anonymous, "
                    "authenticated, claim or none");
    expect_bad_rule("a.> publish=anonymous",
                    "config: rules item 3: publish=anonymous is not allowed; use none, "
                    "authenticated or claim");
    expect_bad_rule("a.> presence=maybe",
                    "config: rules item 3: presence=maybe is not a boolean; use true or false");
    expect_bad_rule("a.> retain=",
                    "config: rules item 3: retain= is not a boolean; use true or false");
    expect_bad_rule("a.> history_size=1000001",
                    "config: rules item 3: history_size=1000001 is not a number in 0..1000000");
    expect_bad_rule("a.> history_size=-1",
                    "config: rules item 3: history_size=-1 is not a number in 0..1000000");
    expect_bad_rule("a.> history_ttl=10",
                    "config: rules item 3: history_ttl=10 is not a duration; use a number with "
                    "ms, s, m or h (e.g. 10m), at most 720h, or 0 for no age limit");
    expect_bad_rule("a.> history_ttl=721h",
                    "config: rules item 3: history_ttl=721h is not a duration; use a number "
                    "with ms, s, m or h (e.g. 10m), at most 720h, or 0 for no age limit");
    expect_bad_rule("a.> max_subscribers=lots",
                    "config: rules item 3: max_subscribers=lots is not a number in "
                    "0..10000000 (0 = unlimited)");
}

static void test_auth_rule_parse_reads_only_n_bytes(void **state)
{
    (void)state;
    struct rc_auth_rule r;
    struct rc_err err = {0};
    const char *text = "a.b subscribe=none GARBAGE";
    assert_int_equal(rc_auth_rule_parse(text, 18, 1, &r, &err), 0);
    assert_int_equal(r.subscribe, RC_AUTH_SUB_NONE);
}

/* Every prefix of a good rule parses or fails with a message; never reads past n. */
static void test_auth_rule_parse_every_prefix(void **state)
{
    (void)state;
    const char *text = "chat.*.> subscribe=claim publish=authenticated history_ttl=10m "
                       "max_subscribers=7";
    size_t n = strlen(text);
    for (size_t i = 0; i <= n; i++) {
        char *copy = malloc(i ? i : 1); /* exact size: ASan catches an overread */
        struct rc_auth_rule r;
        struct rc_err err = {0};
        memcpy(copy, text, i);
        int rc = rc_auth_rule_parse(copy, i, 1, &r, &err);
        if (rc != 0) {
            assert_int_equal(rc, -EINVAL);
            assert_true(strncmp(err.msg, "config: rules item 1: ", 22) == 0);
        }
        free(copy);
    }
}

static void test_auth_new_names_the_bad_rule(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    char *rules[] = {"a.> subscribe=none", "b.> publish=sometimes"};
    base_config(&c);
    c.rules.items = rules;
    c.rules.n = 2;
    assert_null(rc_auth_new(&c, &err));
    assert_string_equal(err.msg, "config: rules item 2: publish=sometimes is not allowed; use "
                                 "none, authenticated or claim");
}

static void test_auth_new_refuses_bad_personal_pattern(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    base_config(&c);
    strcpy(c.personal_topics, "user.{sub}.{sub}");
    assert_null(rc_auth_new(&c, &err));
    assert_string_equal(err.msg, "config: personal_topics=user.{sub}.{sub} must hold {sub} "
                                 "exactly once as a whole token (e.g. user.{sub}.>), or be "
                                 "empty");
    strcpy(c.personal_topics, "user..{sub}");
    assert_null(rc_auth_new(&c, &err));
    assert_string_equal(err.msg, "config: personal_topics=user..{sub} is not a pattern: topic "
                                 "\"user..*\": token 2 is empty; tokens are separated by single "
                                 "dots");
}

/* ---- pattern coverage --------------------------------------------------------------------- */

static bool cov(const char *c, const char *p)
{
    return rc_auth_pattern_covers(c, strlen(c), p, strlen(p));
}

static bool ovl(const char *a, const char *b)
{
    return rc_auth_patterns_overlap(a, strlen(a), b, strlen(b)) &&
           rc_auth_patterns_overlap(b, strlen(b), a, strlen(a));
}

static void test_auth_covers_literal_topics(void **state)
{
    (void)state;
    assert_true(cov("a.b", "a.b"));
    assert_false(cov("a.b", "a.c"));
    assert_false(cov("a.b", "a"));
    assert_false(cov("a", "a.b"));
    assert_false(cov("a.b", "a.*"));
    assert_false(cov("a.b", "a.>"));
}

static void test_auth_covers_with_star(void **state)
{
    (void)state;
    assert_true(cov("a.*", "a.b"));
    assert_true(cov("a.*", "a.*"));
    assert_false(cov("a.*", "a.>"));
    assert_false(cov("a.*", "a.b.c"));
    assert_false(cov("a.*", "a"));
    assert_true(cov("*.*", "a.*"));
    assert_true(cov("*.b", "*.b"));
    assert_false(cov("*.b", "*.*"));
    assert_true(cov("*", "x"));
    assert_false(cov("*", ">"));
}

static void test_auth_covers_with_gt(void **state)
{
    (void)state;
    assert_true(cov(">", "a"));
    assert_true(cov(">", "a.b.c"));
    assert_true(cov(">", "*"));
    assert_true(cov(">", ">"));
    assert_true(cov("a.>", "a.b"));
    assert_true(cov("a.>", "a.*.c"));
    assert_true(cov("a.>", "a.>"));
    assert_true(cov("a.>", "a.*.>"));
    assert_false(cov("a.>", "a"));
    assert_false(cov("a.>", ">"));
    assert_false(cov("a.>", "*.b"));
    assert_false(cov("a.b.>", "a.>"));
    assert_false(cov("a.*.>", "a.>"));
    assert_true(cov("a.*.>", "a.b.>"));
    assert_false(cov("a.b", ">"));
}

static void test_auth_covers_refuses_invalid_patterns(void **state)
{
    (void)state;
    assert_false(cov("a.>.b", "a.x.b"));
    assert_false(cov(">", "a..b"));
    assert_false(cov("", ""));
}

static void test_auth_overlap_cases(void **state)
{
    (void)state;
    assert_true(ovl("a.*.c", "a.b.>"));
    assert_true(ovl(">", "secret.x"));
    assert_true(ovl("*.b", "a.*"));
    assert_true(ovl("a.>", "a.b.c"));
    assert_false(ovl("a.*", "a.b.c"));
    assert_false(ovl("a.>", "a"));
    assert_false(ovl("a.b", "a.c"));
    assert_false(ovl("*", "a.b"));
    assert_false(ovl("a.*.c", "a.b.d"));
}

/* ---- subscribe / publish modes ------------------------------------------------------------ */

static char *mode_rules[] = {
    "open.> subscribe=anonymous publish=none",
    "members.> subscribe=authenticated publish=authenticated",
    "org.> subscribe=claim publish=claim",
    "secret.> subscribe=none",
    "plain.> history_size=10",
};

struct fixture {
    struct rc_config cfg;
    struct rc_auth *a;
    struct rc_auth_identity *alice; /* topics claim: org.acme.>, org.beta.news, bad..pattern */
    struct rc_auth_identity *bob;   /* no topics claim */
};

static int fixture_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    base_config(&f->cfg);
    f->a = make_auth(&f->cfg, mode_rules, RC_ARRAY_LEN(mode_rules));
    f->alice = login(f->a, "{\"sub\":\"alice\",\"exp\":1700000100,"
                           "\"topics\":[\"org.acme.>\",\"org.beta.news\",\"bad..pattern\"]}");
    f->bob = login(f->a, "{\"sub\":\"bob\"}");
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    struct fixture *f = *state;
    rc_auth_identity_free(f->alice);
    rc_auth_identity_free(f->bob);
    rc_auth_free(f->a);
    free(f);
    return 0;
}

static void test_auth_sub_anonymous_mode_allows_everyone(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    assert_int_equal(sub(f->a, NULL, "open.news", &err), 0);
    assert_int_equal(sub(f->a, f->bob, "open.*", &err), 0);
}

static void test_auth_sub_authenticated_mode(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    assert_int_equal(sub(f->a, f->bob, "members.lounge", &err), 0);
    expect_forbidden(sub(f->a, NULL, "members.lounge", &err), &err,
                     "subscribe to members.lounge refused: rule 2 (members.> "
                     "subscribe=authenticated) needs an authenticated connection");
}

static void test_auth_sub_claim_mode(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    assert_int_equal(sub(f->a, f->alice, "org.acme.models", &err), 0);
    assert_int_equal(sub(f->a, f->alice, "org.acme.>", &err), 0);
    assert_int_equal(sub(f->a, f->alice, "org.acme.*.x", &err), 0);
    assert_int_equal(sub(f->a, f->alice, "org.beta.news", &err), 0);
    expect_forbidden(sub(f->a, f->alice, "org.beta.*", &err), &err,
                     "subscribe to org.beta.* refused: rule 3 (org.> subscribe=claim) needs a "
                     "token whose topics claim covers it");
    expect_forbidden(sub(f->a, f->alice, "org.>", &err), &err,
                     "subscribe to org.> refused: rule 3 (org.> subscribe=claim) needs a token "
                     "whose topics claim covers it");
    expect_forbidden(sub(f->a, f->bob, "org.acme.models", &err), &err,
                     "subscribe to org.acme.models refused: rule 3 (org.> subscribe=claim) needs "
                     "a token whose topics claim covers it");
    expect_forbidden(sub(f->a, NULL, "org.acme.models", &err), &err,
                     "subscribe to org.acme.models refused: rule 3 (org.> subscribe=claim) needs "
                     "a token whose topics claim covers it");
}

static void test_auth_sub_none_mode_refuses_everyone(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    expect_forbidden(sub(f->a, f->alice, "secret.plans", &err), &err,
                     "subscribe to secret.plans refused: rule 4 (secret.> subscribe=none) allows "
                     "no subscriptions");
}

static void test_auth_sub_default_mode_and_unmatched_topics(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    assert_int_equal(sub(f->a, NULL, "plain.x", &err), 0);   /* rule without subscribe= */
    assert_int_equal(sub(f->a, NULL, "weather.x", &err), 0); /* no rule */
    assert_int_equal(sub(f->a, f->bob, "weather.*", &err), 0);
}

static void test_auth_sub_broad_pattern_is_refused_by_overlapping_rule(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    expect_forbidden(sub(f->a, NULL, "*.lounge", &err), &err,
                     "subscribe to *.lounge refused: it overlaps rule 2 (members.> "
                     "subscribe=authenticated), which needs an authenticated connection; "
                     "subscribe to narrower patterns");
    expect_forbidden(sub(f->a, f->alice, "*.plans", &err), &err,
                     "subscribe to *.plans refused: it overlaps rule 3 (org.> subscribe=claim), "
                     "which needs a token whose topics claim covers it; subscribe to narrower "
                     "patterns");
}

static void test_auth_sub_everything_is_refused_when_a_rule_closes_a_part(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    char *rules[] = {"secret.> subscribe=none"};
    base_config(&c);
    c.personal_topics[0] = '\0';
    struct rc_auth *a = make_auth(&c, rules, 1);
    struct rc_auth_identity *bob = login(a, "{\"sub\":\"bob\"}");
    expect_forbidden(sub(a, bob, ">", &err), &err,
                     "subscribe to > refused: it overlaps rule 1 (secret.> subscribe=none), "
                     "which allows no subscriptions; subscribe to narrower patterns");
    expect_forbidden(sub(a, bob, "*.x", &err), &err,
                     "subscribe to *.x refused: it overlaps rule 1 (secret.> subscribe=none), "
                     "which allows no subscriptions; subscribe to narrower patterns");
    assert_int_equal(sub(a, bob, "*", &err), 0); /* one token: never under secret.> */
    assert_int_equal(sub(a, bob, "public.>", &err), 0);
    rc_auth_identity_free(bob);
    rc_auth_free(a);
}

static void test_auth_sub_overlap_with_claim_checks_the_governed_part(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    char *rules[] = {"org.> subscribe=claim"};
    base_config(&c);
    c.personal_topics[0] = '\0';
    struct rc_auth *a = make_auth(&c, rules, 1);
    struct rc_auth_identity *alice = login(a, "{\"sub\":\"alice\",\"topics\":[\"org.acme.>\"]}");
    /* rule 1 governs org.acme.> of *.acme.>, which alice's claim covers */
    assert_int_equal(sub(a, alice, "*.acme.>", &err), 0);
    expect_forbidden(sub(a, alice, "*.beta.>", &err), &err,
                     "subscribe to *.beta.> refused: it overlaps rule 1 (org.> subscribe=claim), "
                     "which needs a token whose topics claim covers it; subscribe to narrower "
                     "patterns");
    rc_auth_identity_free(alice);
    rc_auth_free(a);
}

static void test_auth_sub_refuses_invalid_pattern(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    assert_int_equal(sub(f->a, NULL, "a..b", &err), -EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "bad_topic");
}

static void test_auth_sub_anonymous_none_refuses_all_anonymous(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    char *rules[] = {"open.> subscribe=anonymous"};
    base_config(&c);
    c.anonymous = RC_CONFIG_ANON_NONE;
    struct rc_auth *a = make_auth(&c, rules, 1);
    struct rc_auth_identity *bob = login(a, "{\"sub\":\"bob\"}");
    expect_forbidden(sub(a, NULL, "open.news", &err), &err,
                     "subscribe to open.news refused: anonymous connections may not subscribe "
                     "(anonymous=none); authenticate first");
    assert_int_equal(sub(a, bob, "open.news", &err), 0);
    rc_auth_identity_free(bob);
    rc_auth_free(a);
}

static void test_auth_first_matching_rule_wins(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    char *rules[] = {"chat.public.> subscribe=anonymous history_size=5",
                     "chat.> subscribe=none history_size=9"};
    base_config(&c);
    struct rc_auth *a = make_auth(&c, rules, 2);
    assert_int_equal(sub(a, NULL, "chat.public.lobby", &err), 0);
    expect_forbidden(sub(a, NULL, "chat.private.x", &err), &err,
                     "subscribe to chat.private.x refused: rule 2 (chat.> subscribe=none) "
                     "allows no subscriptions");
    const struct rc_auth_rule *r = rc_auth_rule_for(a, "chat.public.lobby", 17);
    assert_non_null(r);
    assert_int_equal(r->history_size, 5);
    r = rc_auth_rule_for(a, "chat.public", 11);
    assert_non_null(r);
    assert_int_equal(r->history_size, 9);
    assert_null(rc_auth_rule_for(a, "news", 4));
    rc_auth_free(a);
}

static void test_auth_earlier_rule_decides_over_later_one(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    char *rules[] = {"chat.> subscribe=none", "chat.public.> subscribe=anonymous"};
    base_config(&c);
    struct rc_auth *a = make_auth(&c, rules, 2);
    expect_forbidden(sub(a, NULL, "chat.public.lobby", &err), &err,
                     "subscribe to chat.public.lobby refused: rule 1 (chat.> subscribe=none) "
                     "allows no subscriptions");
    rc_auth_free(a);
}

static void test_auth_pub_modes(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    expect_forbidden(pub(f->a, f->alice, "open.news", &err), &err,
                     "publish to open.news refused: rule 1 (open.> publish=none) allows no "
                     "client publishing; publish through the HTTP API");
    assert_int_equal(pub(f->a, f->bob, "members.lounge", &err), 0);
    expect_forbidden(pub(f->a, NULL, "members.lounge", &err), &err,
                     "publish to members.lounge refused: rule 2 (members.> "
                     "publish=authenticated) needs an authenticated connection");
    assert_int_equal(pub(f->a, f->alice, "org.acme.x", &err), 0);
    expect_forbidden(pub(f->a, f->bob, "org.acme.x", &err), &err,
                     "publish to org.acme.x refused: rule 3 (org.> publish=claim) needs a token "
                     "whose topics claim covers it");
}

static void test_auth_pub_default_follows_client_publish(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    expect_forbidden(pub(f->a, f->bob, "weather.x", &err), &err,
                     "publish to weather.x refused: client publishing is disabled "
                     "(client_publish=false); publish through the HTTP API");
    expect_forbidden(pub(f->a, f->bob, "plain.x", &err), &err,
                     "publish to plain.x refused: client publishing is disabled "
                     "(client_publish=false); publish through the HTTP API");

    struct rc_config c;
    char *rules[] = {"plain.> history_size=1"};
    base_config(&c);
    c.client_publish = true;
    struct rc_auth *a = make_auth(&c, rules, 1);
    assert_int_equal(pub(a, NULL, "weather.x", &err), 0);
    assert_int_equal(pub(a, NULL, "plain.x", &err), 0);
    rc_auth_free(a);
}

static void test_auth_pub_refuses_patterns(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    assert_int_equal(pub(f->a, f->bob, "members.*", &err), -EINVAL);
    assert_string_equal(err.code, "bad_topic");
}

/* ---- personal topics ------------------------------------------------------------------------ */

static void test_auth_personal_allows_own_topics(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    assert_int_equal(sub(f->a, f->alice, "user.alice.inbox", &err), 0);
    assert_int_equal(sub(f->a, f->alice, "user.alice.>", &err), 0);
    assert_int_equal(sub(f->a, f->alice, "user.alice.*", &err), 0);
    assert_int_equal(sub(f->a, f->alice, "user.alice.a.b", &err), 0);
    assert_int_equal(sub(f->a, f->alice, "user", &err), 0);     /* outside: needs 3 tokens */
    assert_int_equal(sub(f->a, f->alice, "user.bob", &err), 0); /* likewise */
    assert_int_equal(sub(f->a, f->alice, "users.bob.inbox", &err), 0);
}

static void test_auth_personal_refuses_other_users_topics(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    expect_forbidden(sub(f->a, f->alice, "user.bob.inbox", &err), &err,
                     "subscribe to user.bob.inbox refused: personal topic of another user");
    expect_forbidden(sub(f->a, f->alice, "user.*.inbox", &err), &err,
                     "subscribe to user.*.inbox refused: personal topic of another user");
    expect_forbidden(sub(f->a, f->alice, "user.>", &err), &err,
                     "subscribe to user.> refused: personal topic of another user");
    expect_forbidden(sub(f->a, f->alice, ">", &err), &err,
                     "subscribe to > refused: personal topic of another user");
    expect_forbidden(sub(f->a, f->alice, "*.*.inbox", &err), &err,
                     "subscribe to *.*.inbox refused: personal topic of another user");
    expect_forbidden(sub(f->a, f->alice, "user.alicex.inbox", &err), &err,
                     "subscribe to user.alicex.inbox refused: personal topic of another user");
}

static void test_auth_personal_refuses_anonymous(void **state)
{
    struct fixture *f = *state;
    struct rc_err err = {0};
    expect_forbidden(sub(f->a, NULL, "user.alice.inbox", &err), &err,
                     "subscribe to user.alice.inbox refused: personal topic; only its user may "
                     "subscribe, after authenticating");
}

static void test_auth_personal_applies_to_publish(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    base_config(&c);
    c.client_publish = true;
    struct rc_auth *a = make_auth(&c, NULL, 0);
    struct rc_auth_identity *alice = login(a, "{\"sub\":\"alice\"}");
    assert_int_equal(pub(a, alice, "user.alice.inbox", &err), 0);
    assert_int_equal(sub(a, alice, "*.alice.inbox", &err), 0); /* {sub} is alice's */
    expect_forbidden(pub(a, alice, "user.bob.inbox", &err), &err,
                     "publish to user.bob.inbox refused: personal topic of another user");
    rc_auth_identity_free(alice);
    rc_auth_free(a);
}

static void test_auth_personal_sub_with_dot_owns_nothing(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    base_config(&c);
    struct rc_auth *a = make_auth(&c, NULL, 0);
    struct rc_auth_identity *odd = login(a, "{\"sub\":\"a.b\"}");
    expect_forbidden(sub(a, odd, "user.a.b", &err), &err,
                     "subscribe to user.a.b refused: personal topic of another user");
    rc_auth_identity_free(odd);
    rc_auth_free(a);
}

static void test_auth_personal_pattern_in_the_middle(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    base_config(&c);
    strcpy(c.personal_topics, "app.*.{sub}.private");
    struct rc_auth *a = make_auth(&c, NULL, 0);
    struct rc_auth_identity *alice = login(a, "{\"sub\":\"alice\"}");
    assert_int_equal(sub(a, alice, "app.x.alice.private", &err), 0);
    assert_int_equal(sub(a, alice, "app.*.alice.private", &err), 0);
    assert_int_equal(sub(a, alice, "app.x.bob.public", &err), 0);
    assert_int_equal(sub(a, alice, "app.x.bob.private.more", &err), 0);
    expect_forbidden(sub(a, alice, "app.x.bob.private", &err), &err,
                     "subscribe to app.x.bob.private refused: personal topic of another user");
    expect_forbidden(sub(a, alice, "app.x.>", &err), &err,
                     "subscribe to app.x.> refused: personal topic of another user");
    rc_auth_identity_free(alice);
    rc_auth_free(a);
}

static void test_auth_personal_disabled_when_empty(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    base_config(&c);
    c.personal_topics[0] = '\0';
    struct rc_auth *a = make_auth(&c, NULL, 0);
    assert_int_equal(sub(a, NULL, "user.bob.inbox", &err), 0);
    rc_auth_free(a);
}

/* ---- identity ---------------------------------------------------------------------------------
 */

static void test_auth_identity_from_token(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(f->alice->sub, "alice");
    assert_int_equal(f->alice->sub_len, 5);
    assert_int_equal(f->alice->alg, RC_JWT_HS256);
    assert_true(f->alice->has_topics);
    assert_int_equal(f->alice->n_topics, 2); /* "bad..pattern" dropped */
    assert_string_equal(f->alice->topics[0].p, "org.acme.>");
    assert_int_equal(f->alice->topics[1].n, 13);
    assert_int_equal(f->alice->expires_at, 1700000130); /* exp + 30 s leeway */
    assert_false(rc_auth_identity_expired(f->alice, 1700000129));
    assert_true(rc_auth_identity_expired(f->alice, 1700000130));
    assert_false(f->bob->has_topics);
    assert_int_equal(f->bob->expires_at, INT64_MAX);
}

static void test_auth_authenticate_reports_expired_token(void **state)
{
    struct fixture *f = *state;
    char tok[512];
    struct rc_err err = {0};
    struct rc_auth_identity *id = (void *)1;
    sign_hs256("{\"sub\":\"carol\",\"exp\":1699999000}", tok, sizeof(tok));
    assert_int_equal(rc_auth_authenticate(f->a, tok, strlen(tok), NOW, &id, &err), -EACCES);
    assert_null(id);
    assert_int_equal(err.status, 401);
    assert_string_equal(err.code, "token_expired");
}

static void test_auth_authenticate_refuses_bad_signature(void **state)
{
    struct fixture *f = *state;
    char tok[512];
    struct rc_err err = {0};
    struct rc_auth_identity *id = NULL;
    sign_hs256("{\"sub\":\"carol\"}", tok, sizeof(tok));
    tok[strlen(tok) - 2] ^= 1;
    assert_int_equal(rc_auth_authenticate(f->a, tok, strlen(tok), NOW, &id, &err), -EACCES);
    assert_string_equal(err.code, "unauthorized");
}

static void test_auth_authenticate_without_key_configured(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    struct rc_auth_identity *id = NULL;
    base_config(&c);
    c.jwt_secret[0] = '\0';
    struct rc_auth *a = make_auth(&c, NULL, 0);
    assert_false(rc_auth_has_jwt(a));
    assert_int_equal(rc_auth_authenticate(a, "x.y.z", 5, NOW, &id, &err), -EACCES);
    assert_int_equal(err.status, 401);
    assert_string_equal(err.code, "unauthorized");
    assert_string_equal(err.msg, "this server verifies no tokens (no jwt_secret or "
                                 "jwt_public_key_file configured); connect without a token");
    rc_auth_free(a);
}

static void test_auth_new_reports_jwt_setup_errors(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    base_config(&c);
    strcpy(c.jwt_public_key_file, "/nonexistent/key.pem");
    assert_null(rc_auth_new(&c, &err));
    assert_non_null(strstr(err.msg, "/nonexistent/key.pem"));
}

/* ---- API keys ------------------------------------------------------------------------------- */

static void test_auth_api_key_split_scopes(void **state)
{
    (void)state;
    size_t n;
    unsigned s;
    assert_null(rc_auth_api_key_split("0123456789abcdef", &n, &s));
    assert_int_equal(n, 16);
    assert_int_equal(s, RC_AUTH_SCOPE_ALL);
    assert_null(rc_auth_api_key_split("0123456789abcdef:publish", &n, &s));
    assert_int_equal(n, 16);
    assert_int_equal(s, RC_AUTH_SCOPE_PUBLISH);
    assert_null(rc_auth_api_key_split("0123456789abcdefXY:notify+admin", &n, &s));
    assert_int_equal(n, 18);
    assert_int_equal(s, RC_AUTH_SCOPE_NOTIFY | RC_AUTH_SCOPE_ADMIN);
}

static void test_auth_api_key_split_refuses_bad_items(void **state)
{
    (void)state;
    size_t n;
    unsigned s;
    const char *scope_msg = "has an unknown or empty scope after ':'; write "
                            "KEY:publish+notify+admin with any of publish, notify, admin (no "
                            "suffix = all scopes)";
    assert_string_equal(rc_auth_api_key_split("short", &n, &s),
                        "is shorter than 16 characters; use a long random key");
    assert_string_equal(rc_auth_api_key_split("short:publish", &n, &s),
                        "is shorter than 16 characters; use a long random key");
    assert_string_equal(rc_auth_api_key_split("0123456789 abcdef", &n, &s),
                        "contains a space, quote, backslash or non-ASCII byte; use printable "
                        "ASCII (e.g. hex or base64url)");
    assert_string_equal(rc_auth_api_key_split("0123456789abcdef:", &n, &s), scope_msg);
    assert_string_equal(rc_auth_api_key_split("0123456789abcdef:publish+", &n, &s), scope_msg);
    assert_string_equal(rc_auth_api_key_split("0123456789abcdef:read", &n, &s), scope_msg);
    assert_string_equal(rc_auth_api_key_split("0123456789abcdef:Publish", &n, &s), scope_msg);
}

static struct rc_auth *key_auth(struct rc_config *c)
{
    static char *keys[] = {"all-scopes-key-0123456789", "publish-only-key-0123:publish",
                           "notify-admin-key-0123:notify+admin"};
    base_config(c);
    c->api_keys.items = keys;
    c->api_keys.n = 3;
    return make_auth(c, NULL, 0);
}

static int check_key(struct rc_auth *a, const char *key, unsigned need, struct rc_err *err)
{
    return rc_auth_check_api_key(a, rc_slice_make(key, strlen(key)), need, err);
}

static void test_auth_api_key_accepts_scoped_keys(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    struct rc_auth *a = key_auth(&c);
    assert_int_equal(rc_auth_api_key_count(a), 3);
    assert_int_equal(check_key(a, "all-scopes-key-0123456789", RC_AUTH_SCOPE_ALL, &err), 0);
    assert_int_equal(check_key(a, "publish-only-key-0123", RC_AUTH_SCOPE_PUBLISH, &err), 0);
    assert_int_equal(check_key(a, "notify-admin-key-0123", RC_AUTH_SCOPE_ADMIN, &err), 0);
    assert_int_equal(check_key(a, "notify-admin-key-0123", 0, &err), 0);
    rc_auth_free(a);
}

static void test_auth_api_key_refuses_missing_scope(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    struct rc_auth *a = key_auth(&c);
    assert_int_equal(check_key(a, "publish-only-key-0123", RC_AUTH_SCOPE_NOTIFY, &err), -EACCES);
    assert_int_equal(err.status, 403);
    assert_string_equal(err.code, "forbidden");
    assert_string_equal(err.msg, "the API key lacks the notify scope; use a key with it, or add "
                                 "it in api_keys (KEY:publish+notify+admin)");
    assert_int_equal(check_key(a, "notify-admin-key-0123", RC_AUTH_SCOPE_PUBLISH, &err), -EACCES);
    assert_string_equal(err.msg, "the API key lacks the publish scope; use a key with it, or "
                                 "add it in api_keys (KEY:publish+notify+admin)");
    rc_auth_free(a);
}

static void test_auth_api_key_refuses_wrong_keys(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    struct rc_auth *a = key_auth(&c);
    const char *bad[] = {"all-scopes-key-012345678", "all-scopes-key-01234567890",
                         "all-scopes-key-0123456788", "publish-only-key-0123:publish",
                         "ALL-SCOPES-KEY-0123456789"};
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        assert_int_equal(check_key(a, bad[i], 0, &err), -EACCES);
        assert_int_equal(err.status, 403);
        assert_string_equal(err.msg, "the API key is not valid");
    }
    assert_int_equal(check_key(a, "", 0, &err), -ENOENT);
    assert_int_equal(err.status, 401);
    rc_auth_free(a);
}

static void test_auth_api_key_none_configured(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    base_config(&c);
    struct rc_auth *a = make_auth(&c, NULL, 0);
    assert_int_equal(rc_auth_api_key_count(a), 0);
    assert_int_equal(check_key(a, "all-scopes-key-0123456789", 0, &err), -ENOENT);
    assert_string_equal(err.code, "unauthorized");
    rc_auth_free(a);
}

static void test_auth_new_refuses_bad_api_key_without_echo(void **state)
{
    (void)state;
    struct rc_config c;
    struct rc_err err = {0};
    char *keys[] = {"good-key-0123456789abc", "tooshort:admin"};
    base_config(&c);
    c.api_keys.items = keys;
    c.api_keys.n = 2;
    assert_null(rc_auth_new(&c, &err));
    assert_string_equal(err.msg, "config: api_keys item 2 is shorter than 16 characters; use a "
                                 "long random key");
}

/* ---- token extraction ----------------------------------------------------------------------- */

static int from_query(const char *q, char *buf, size_t cap, size_t *len, struct rc_err *err)
{
    return rc_auth_token_from_query(rc_slice_make(q, strlen(q)), buf, cap, len, err);
}

static void test_auth_token_from_query_among_other_params(void **state)
{
    (void)state;
    char buf[64];
    size_t len = 0;
    struct rc_err err = {0};
    assert_int_equal(from_query("a=1&token=abc.def.ghi&b=2", buf, sizeof(buf), &len, &err), 0);
    assert_int_equal(len, 11);
    assert_memory_equal(buf, "abc.def.ghi", 11);
    assert_int_equal(from_query("token=xyz", buf, sizeof(buf), &len, &err), 0);
    assert_int_equal(len, 3);
    assert_int_equal(from_query("tokens=1&mytoken=2&token=q", buf, sizeof(buf), &len, &err), 0);
    assert_int_equal(len, 1);
    assert_int_equal(buf[0], 'q');
}

static void test_auth_token_from_query_every_prefix(void **state)
{
    (void)state;
    const char *q = "a=1&token=ab%2Ecd&b=2";
    size_t n = strlen(q);
    for (size_t i = 0; i <= n; i++) {
        char *copy = malloc(i ? i : 1);
        char buf[32];
        size_t len = 0;
        struct rc_err err = {0};
        memcpy(copy, q, i);
        int rc = rc_auth_token_from_query(rc_slice_make(copy, i), buf, sizeof(buf), &len, &err);
        if (i < 9)
            assert_int_equal(rc, -ENOENT);
        else if (i == 9 || i == 10)
            assert_int_equal(rc, -EINVAL); /* "token" or "token=": empty */
        else if (i == 13 || i == 14)
            assert_int_equal(rc, -EINVAL); /* cut inside %2E */
        else
            assert_int_equal(rc, 0);
        free(copy);
    }
}

static void test_auth_token_from_query_decodes_percent(void **state)
{
    (void)state;
    char buf[64];
    size_t len = 0;
    struct rc_err err = {0};
    assert_int_equal(from_query("x=%20&token=ab%2Ecd%2eef+g", buf, sizeof(buf), &len, &err), 0);
    assert_int_equal(len, 10);
    assert_memory_equal(buf, "ab.cd.ef+g", 10);
}

static void test_auth_token_from_query_absent(void **state)
{
    (void)state;
    char buf[64];
    size_t len = 0;
    struct rc_err err = {0};
    assert_int_equal(from_query("", buf, sizeof(buf), &len, &err), -ENOENT);
    assert_int_equal(from_query("a=1&b=token", buf, sizeof(buf), &len, &err), -ENOENT);
    assert_int_equal(from_query("Token=abc", buf, sizeof(buf), &len, &err), -ENOENT);
}

static void test_auth_token_from_query_refuses_bad_values(void **state)
{
    (void)state;
    char buf[8];
    size_t len = 0;
    struct rc_err err = {0};
    assert_int_equal(from_query("token=", buf, sizeof(buf), &len, &err), -EINVAL);
    assert_string_equal(err.msg, "token= in the URL query is empty; give a JWT");
    assert_int_equal(from_query("token", buf, sizeof(buf), &len, &err), -EINVAL);
    assert_int_equal(from_query("token=a&token=b", buf, sizeof(buf), &len, &err), -EINVAL);
    assert_string_equal(err.msg, "token is given twice in the URL query; give it once");
    assert_int_equal(from_query("token=a%2", buf, sizeof(buf), &len, &err), -EINVAL);
    assert_string_equal(err.msg, "token in the URL query has a bad %XX escape or a NUL byte; "
                                 "percent-encode it correctly");
    assert_int_equal(from_query("token=a%00b", buf, sizeof(buf), &len, &err), -EINVAL);
    assert_int_equal(from_query("token=123456789", buf, sizeof(buf), &len, &err), -EINVAL);
    assert_string_equal(err.msg, "token in the URL query is too large: over 8 bytes");
    assert_int_equal(err.status, 401);
    assert_string_equal(err.code, "unauthorized");
    assert_int_equal(from_query("token=12345678", buf, sizeof(buf), &len, &err), 0);
}

static int from_header(const char *v, struct rc_slice *tok, struct rc_err *err)
{
    return rc_auth_token_from_header(rc_slice_make(v, strlen(v)), tok, err);
}

static void test_auth_token_from_header_bearer_any_case(void **state)
{
    (void)state;
    const char *cases[] = {"Bearer abc.def", "bearer abc.def", "BEARER   abc.def  ",
                           " \tbEaReR\tabc.def"};
    struct rc_slice tok;
    struct rc_err err = {0};
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        assert_int_equal(from_header(cases[i], &tok, &err), 0);
        assert_int_equal(tok.n, 7);
        assert_memory_equal(tok.p, "abc.def", 7);
    }
}

static void test_auth_token_from_header_other_schemes(void **state)
{
    (void)state;
    struct rc_slice tok;
    struct rc_err err = {0};
    assert_int_equal(from_header("Basic dXNlcjpwYXNz", &tok, &err), -ENOENT);
    assert_int_equal(from_header("Bearerabc", &tok, &err), -ENOENT);
    assert_int_equal(from_header("", &tok, &err), -ENOENT);
}

static void test_auth_token_from_header_refuses_bad_values(void **state)
{
    (void)state;
    struct rc_slice tok;
    struct rc_err err = {0};
    assert_int_equal(from_header("Bearer", &tok, &err), -EINVAL);
    assert_string_equal(err.msg,
                        "Authorization: Bearer has no token; send Authorization: Bearer <token>");
    assert_int_equal(from_header("Bearer   ", &tok, &err), -EINVAL);
    assert_int_equal(from_header("Bearer a b", &tok, &err), -EINVAL);
    assert_string_equal(err.msg, "Authorization: Bearer holds more than one word; send one "
                                 "token");
    assert_int_equal(err.status, 401);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_rule_parses_every_setting),
        cmocka_unit_test(test_auth_rule_defaults_when_settings_are_absent),
        cmocka_unit_test(test_auth_rule_parses_each_mode_word),
        cmocka_unit_test(test_auth_rule_refuses_each_bad_item),
        cmocka_unit_test(test_auth_rule_parse_reads_only_n_bytes),
        cmocka_unit_test(test_auth_rule_parse_every_prefix),
        cmocka_unit_test(test_auth_new_names_the_bad_rule),
        cmocka_unit_test(test_auth_new_refuses_bad_personal_pattern),
        cmocka_unit_test(test_auth_covers_literal_topics),
        cmocka_unit_test(test_auth_covers_with_star),
        cmocka_unit_test(test_auth_covers_with_gt),
        cmocka_unit_test(test_auth_covers_refuses_invalid_patterns),
        cmocka_unit_test(test_auth_overlap_cases),
        cmocka_unit_test_setup_teardown(test_auth_sub_anonymous_mode_allows_everyone, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_sub_authenticated_mode, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_sub_claim_mode, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_sub_none_mode_refuses_everyone, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_sub_default_mode_and_unmatched_topics,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_sub_broad_pattern_is_refused_by_overlapping_rule,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test(test_auth_sub_everything_is_refused_when_a_rule_closes_a_part),
        cmocka_unit_test(test_auth_sub_overlap_with_claim_checks_the_governed_part),
        cmocka_unit_test_setup_teardown(test_auth_sub_refuses_invalid_pattern, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test(test_auth_sub_anonymous_none_refuses_all_anonymous),
        cmocka_unit_test(test_auth_first_matching_rule_wins),
        cmocka_unit_test(test_auth_earlier_rule_decides_over_later_one),
        cmocka_unit_test_setup_teardown(test_auth_pub_modes, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_pub_default_follows_client_publish, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_pub_refuses_patterns, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_personal_allows_own_topics, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_personal_refuses_other_users_topics,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_personal_refuses_anonymous, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test(test_auth_personal_applies_to_publish),
        cmocka_unit_test(test_auth_personal_sub_with_dot_owns_nothing),
        cmocka_unit_test(test_auth_personal_pattern_in_the_middle),
        cmocka_unit_test(test_auth_personal_disabled_when_empty),
        cmocka_unit_test_setup_teardown(test_auth_identity_from_token, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_authenticate_reports_expired_token, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_auth_authenticate_refuses_bad_signature, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test(test_auth_authenticate_without_key_configured),
        cmocka_unit_test(test_auth_new_reports_jwt_setup_errors),
        cmocka_unit_test(test_auth_api_key_split_scopes),
        cmocka_unit_test(test_auth_api_key_split_refuses_bad_items),
        cmocka_unit_test(test_auth_api_key_accepts_scoped_keys),
        cmocka_unit_test(test_auth_api_key_refuses_missing_scope),
        cmocka_unit_test(test_auth_api_key_refuses_wrong_keys),
        cmocka_unit_test(test_auth_api_key_none_configured),
        cmocka_unit_test(test_auth_new_refuses_bad_api_key_without_echo),
        cmocka_unit_test(test_auth_token_from_query_among_other_params),
        cmocka_unit_test(test_auth_token_from_query_every_prefix),
        cmocka_unit_test(test_auth_token_from_query_decodes_percent),
        cmocka_unit_test(test_auth_token_from_query_absent),
        cmocka_unit_test(test_auth_token_from_query_refuses_bad_values),
        cmocka_unit_test(test_auth_token_from_header_bearer_any_case),
        cmocka_unit_test(test_auth_token_from_header_other_schemes),
        cmocka_unit_test(test_auth_token_from_header_refuses_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
