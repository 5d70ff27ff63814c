/* redis_keys.c - endpoints, placement, names, the publish script and the
 * event message of the Redis broker engine (see redis_keys.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ringcast/redis_keys.h"

/* ---- endpoints ------------------------------------------------------------------------ */

static bool parse_uint(const char *p, size_t n, unsigned long max, unsigned long *out)
{
    if (n == 0 || n > 10)
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

int rc_redis_url_parse(const char *url, size_t n, struct rc_redis_endpoint *out, struct rc_err *err)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof(*out));
    if (n < sizeof(scheme) - 1 || memcmp(url, scheme, sizeof(scheme) - 1) != 0) {
        rc_err_set(err, 400, "bad_value",
                   "redis_url must look like redis://[:password@]host:port[/db] (no other "
                   "scheme; TLS is not supported)");
        return -EINVAL;
    }
    const char *p = url + sizeof(scheme) - 1, *end = url + n;
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        if (*p != ':') {
            rc_err_set(err, 400, "bad_value",
                       "redis_url: only a password is supported before '@' "
                       "(redis://:password@host:port), not a user name");
            return -EINVAL;
        }
        size_t pl = (size_t)(at - p - 1);
        if (pl == 0 || pl >= sizeof(out->password)) {
            rc_err_set(err, 400, "bad_value", "redis_url: the password is empty or longer than %zu",
                       sizeof(out->password) - 1);
            return -EINVAL;
        }
        memcpy(out->password, p + 1, pl);
        p = at + 1;
    }
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *hend = slash ? slash : end;
    const char *colon = NULL;
    for (const char *q = hend; q > p; q--)
        if (q[-1] == ':') {
            colon = q - 1;
            break;
        }
    unsigned long v = 0;
    if (!colon || colon == p || !parse_uint(colon + 1, (size_t)(hend - colon - 1), 65535, &v) ||
        v == 0) {
        rc_err_set(err, 400, "bad_value",
                   "redis_url: needs host:port with a port in 1..65535 (redis://host:6379)");
        return -EINVAL;
    }
    out->port = (uint16_t)v;
    size_t hl = (size_t)(colon - p);
    if (hl >= sizeof(out->host)) {
        rc_err_set(err, 400, "bad_value", "redis_url: the host is longer than %zu",
                   sizeof(out->host) - 1);
        return -EINVAL;
    }
    for (size_t i = 0; i < hl; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '@' || ch == '/') {
            rc_err_set(err, 400, "bad_value",
                       "redis_url: the host has a character that is "
                       "not allowed in a host name");
            return -EINVAL;
        }
    }
    memcpy(out->host, p, hl);
    if (slash) {
        if (!parse_uint(slash + 1, (size_t)(end - slash - 1), 15, &v)) {
            rc_err_set(err, 400, "bad_value", "redis_url: the database after '/' must be 0..15");
            return -EINVAL;
        }
        out->db = (unsigned)v;
    }
    return 0;
}

void rc_redis_endpoint_name(const struct rc_redis_endpoint *ep, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%u/%u", ep->host, (unsigned)ep->port, ep->db);
}

/* ---- placement ------------------------------------------------------------------------- */

uint32_t rc_jump_hash(uint64_t key, uint32_t buckets)
{
    int64_t b = -1, j = 0;
    while (j < (int64_t)buckets) {
        b = j;
        key = key * 2862933555777941757ull + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1ll << 31) / (double)((key >> 33) + 1)));
    }
    return (uint32_t)b;
}

uint32_t rc_redis_instance_for(const char *topic, size_t len, uint32_t n)
{
    return n <= 1 ? 0 : rc_jump_hash(XXH3_64bits(topic, len), n);
}

int rc_redis_key(char *out, size_t cap, char kind, const char *topic, size_t len)
{
    if (cap < len + 6)
        return -ENOSPC;
    out[0] = 'r';
    out[1] = 'c';
    out[2] = ':';
    out[3] = kind;
    out[4] = ':';
    memcpy(out + 5, topic, len);
    out[len + 5] = '\0';
    return (int)(len + 5);
}

/* ---- the publish script ------------------------------------------------------------------- */

/* The epoch is the Redis server's clock in microseconds, in base 36 (about
 * 10 digits): a topic whose meta hash was lost gets a later one. */
_Static_assert(RC_REDIS_IDEM_TTL_S == 300, "the script's SET ... EX is RC_REDIS_IDEM_TTL_S");
/* The publish logic every script that publishes shares (the publish script
 * and the presence script): bump the topic's seq (creating its epoch when its
 * meta hash is gone), keep the event in the stream, PUBLISH it. */
#define PUBLISH_FN                                                                                 \
    "local function rc_publish(m, h, chan, maxlen, typ, data, tgt, ttl, now, key)\n"               \
    "  local epoch = redis.call('HGET', m, 'epoch')\n"                                             \
    "  if not epoch then\n"                                                                        \
    "    local t = redis.call('TIME')\n"                                                           \
    "    local v = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                                    \
    "    local digits, s = '0123456789abcdefghijklmnopqrstuvwxyz', ''\n"                           \
    "    repeat local d = v % 36; s = string.sub(digits, d + 1, d + 1) .. s; v = (v - d) / 36 "    \
    "until v == 0\n"                                                                               \
    "    epoch = s\n"                                                                              \
    "    redis.call('DEL', h)\n"                                                                   \
    "    redis.call('HSET', m, 'epoch', epoch, 'seq', 0)\n"                                        \
    "  end\n"                                                                                      \
    "  local kk\n"                                                                                 \
    "  if key ~= '' then\n"                                                                        \
    "    kk = 'rc:k:' .. string.sub(m, 6) .. ':' .. key\n"                                         \
    "    local prev = redis.call('GET', kk)\n"                                                     \
    "    if prev then\n"                                                                           \
    "      local pe, ps = string.match(prev, '^(%w+)-(%d+)$')\n"                                   \
    "      if pe == epoch then return {epoch, tonumber(ps), 1} end\n"                              \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  local seq = redis.call('HINCRBY', m, 'seq', 1)\n"                                           \
    "  if kk then redis.call('SET', kk, epoch .. '-' .. seq, 'EX', 300) end\n"                     \
    "  if maxlen > 0 then\n"                                                                       \
    "    redis.call('XADD', h, 'MAXLEN', maxlen, '0-' .. seq, 'e', epoch, 't', typ, 'd', data, "   \
    "'u', tgt, 'at', now)\n"                                                                       \
    "  end\n"                                                                                      \
    "  if ttl > 0 then redis.call('PEXPIRE', m, ttl); redis.call('PEXPIRE', h, ttl) end\n"         \
    "  redis.call('PUBLISH', chan, epoch .. '\\n' .. seq .. '\\n' .. typ .. '\\n' .. tgt .. "      \
    "'\\n' .. data)\n"                                                                             \
    "  return {epoch, seq, 0}\n"                                                                   \
    "end\n"

const char rc_redis_publish_script[] =
    PUBLISH_FN "return rc_publish(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], "
               "ARGV[5], tonumber(ARGV[7]), ARGV[8], ARGV[6])\n";

/* Members of dead nodes (score at or below Redis's clock) go first, each
 * counted as a leave; then this node's member is set (new: a join) or
 * removed. A user's first member anywhere publishes presence.joined, its
 * last one presence.left, inside the same script, so those events take
 * their place in the topic's order. */
const char rc_redis_presence_script[] = PUBLISH_FN
    "local m, h, z, c, d, u = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]\n"
    "local op, member, user, conns, pttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])\n"
    "local chan, maxlen, data, ttl = ARGV[6], tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local function gone(mem, usr, dat)\n"
    "  redis.call('HDEL', c, mem); redis.call('HDEL', d, mem)\n"
    "  if redis.call('HINCRBY', u, usr, -1) <= 0 then\n"
    "    redis.call('HDEL', u, usr)\n"
    "    rc_publish(m, h, chan, maxlen, 'presence.left', dat, '', ttl, now, '')\n"
    "  end\n"
    "end\n"
    "for _, mem in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now)) do\n"
    "  redis.call('ZREM', z, mem)\n"
    "  gone(mem, string.match(mem, '^(.*)\\31[^\\31]*$') or mem, redis.call('HGET', d, mem) or "
    "'{}')\n"
    "end\n"
    "if op == 'set' then\n"
    "  if redis.call('ZADD', z, now + pttl, member) == 1 then\n"
    "    redis.call('HSET', d, member, data)\n"
    "    if redis.call('HINCRBY', u, user, 1) == 1 then\n"
    "      rc_publish(m, h, chan, maxlen, 'presence.joined', data, '', ttl, now, '')\n"
    "    end\n"
    "  end\n"
    "  redis.call('HSET', c, member, conns)\n"
    "elseif op == 'del' then\n"
    "  if redis.call('ZREM', z, member) == 1 then gone(member, user, data) end\n"
    "end\n"
    "for _, k in ipairs({z, c, d, u}) do redis.call('PEXPIRE', k, 3 * pttl) end\n"
    "return 0\n";

/* Live members (score above Redis's clock), grouped by user, sorted:
 * {user, connections, data JSON of the user's first member, ...}. */
const char rc_redis_presence_list_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local sum, order, info = {}, {}, {}\n"
    "for _, mem in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do\n"
    "  local usr = string.match(mem, '^(.*)\\31[^\\31]*$') or mem\n"
    "  local n = tonumber(redis.call('HGET', KEYS[2], mem) or '0') or 0\n"
    "  if not sum[usr] then\n"
    "    sum[usr] = 0; table.insert(order, usr); info[usr] = redis.call('HGET', KEYS[3], mem) or "
    "'{}'\n"
    "  end\n"
    "  sum[usr] = sum[usr] + n\n"
    "end\n"
    "table.sort(order)\n"
    "local out = {}\n"
    "for _, usr in ipairs(order) do\n"
    "  table.insert(out, usr); table.insert(out, sum[usr]); table.insert(out, info[usr])\n"
    "end\n"
    "return out\n";

/* ---- the event message ----------------------------------------------------------------------- */

static const char *line_end(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl : NULL;
}

int rc_redis_event_parse(const char *msg, size_t n, struct rc_redis_event *ev)
{
    const char *p = msg, *end = msg + n, *e;
    memset(ev, 0, sizeof(*ev));
    if (!(e = line_end(p, end)) || e == p || (size_t)(e - p) >= sizeof(ev->epoch))
        return -EINVAL;
    for (const char *q = p; q < e; q++)
        if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z')))
            return -EINVAL;
    memcpy(ev->epoch, p, (size_t)(e - p));
    p = e + 1;
    if (!(e = line_end(p, end)) || e == p || e - p > 19)
        return -EINVAL;
    uint64_t seq = 0;
    for (const char *q = p; q < e; q++) {
        if (*q < '0' || *q > '9')
            return -EINVAL;
        seq = seq * 10 + (uint64_t)(*q - '0');
    }
    if (seq == 0)
        return -EINVAL;
    ev->seq = seq;
    p = e + 1;
    if (!(e = line_end(p, end)) || e == p)
        return -EINVAL;
    ev->type = (struct rc_slice){p, (size_t)(e - p)};
    p = e + 1;
    if (!(e = line_end(p, end)))
        return -EINVAL;
    ev->targeting = (struct rc_slice){p, (size_t)(e - p)};
    p = e + 1;
    if (p >= end)
        return -EINVAL;
    ev->data = (struct rc_slice){p, (size_t)(end - p)};
    return 0;
}

uint64_t rc_redis_entry_seq(const char *id, size_t n)
{
    if (n < 3 || id[0] != '0' || id[1] != '-' || n > 22)
        return 0;
    uint64_t seq = 0;
    for (size_t i = 2; i < n; i++) {
        if (id[i] < '0' || id[i] > '9')
            return 0;
        seq = seq * 10 + (uint64_t)(id[i] - '0');
    }
    return seq;
}
