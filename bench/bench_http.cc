// bench_http.cc - rc_http_parse_head() and rc_http_chunked_decode() throughput.
//
// Cases: a typical ~200-byte GET with 6 headers, a POST with a Content-Length
// body, 100 pipelined GETs in one buffer, and a chunked body. The peer is
// BM_Peer_FindHeadEnd*: memmem() for the blank line over the same bytes, the
// least any HTTP/1.1 server must do per request; report parse time as a ratio
// to it (STYLE.md "Benchmarks"). items_per_second is requests per second.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "ringcast/http_parse.h"

namespace
{

const char kGet[] = "GET /api/realtime/events?topic=project.42.models&since=1700000000 HTTP/1.1\r\n"
                    "Host: rt.example.com\r\n"
                    "User-Agent: bench/1.0\r\n"
                    "Accept: text/event-stream\r\n"
                    "Accept-Encoding: gzip\r\n"
                    "Connection: keep-alive\r\n"
                    "Cache-Control: no-cache\r\n"
                    "\r\n";

const char kPost[] = "POST /api/realtime/publish HTTP/1.1\r\n"
                     "Host: rt.example.com\r\n"
                     "Authorization: Bearer 0123456789abcdef\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: 64\r\n"
                     "\r\n"
                     "{\"topic\":\"project.42.models\",\"event\":\"updated\",\"data\":{\"id\":7}}";

rc_http_limits Limits()
{
    rc_http_limits lim;
    rc_http_limits_default(&lim);
    return lim;
}

// One head parse; aborts the benchmark if the input stops parsing.
bool ParseOne(const char *buf, size_t len, const rc_http_limits &lim, rc_http_request *req,
              size_t *consumed)
{
    rc_err err;
    return rc_http_parse_head(buf, len, 0, &lim, req, consumed, &err) == RC_PARSE_DONE;
}

void BM_ParseGet(benchmark::State &state)
{
    const rc_http_limits lim = Limits();
    rc_http_request req;
    size_t consumed = 0;

    for (auto _ : state) {
        if (!ParseOne(kGet, sizeof(kGet) - 1, lim, &req, &consumed)) {
            state.SkipWithError("GET did not parse");
            break;
        }
        benchmark::DoNotOptimize(req.nheaders);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * int64_t(sizeof(kGet) - 1));
    state.counters["head_bytes"] = double(sizeof(kGet) - 1);
}
BENCHMARK(BM_ParseGet);

void BM_ParsePostWithBody(benchmark::State &state)
{
    const rc_http_limits lim = Limits();
    rc_http_request req;
    size_t consumed = 0;

    for (auto _ : state) {
        if (!ParseOne(kPost, sizeof(kPost) - 1, lim, &req, &consumed)) {
            state.SkipWithError("POST did not parse");
            break;
        }
        // The body needs no parsing: it is content_length bytes at consumed.
        benchmark::DoNotOptimize(kPost + consumed + req.content_length);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * int64_t(sizeof(kPost) - 1));
}
BENCHMARK(BM_ParsePostWithBody);

std::string Pipelined(int n)
{
    std::string s;
    for (int i = 0; i < n; i++)
        s.append(kGet, sizeof(kGet) - 1);
    return s;
}

void BM_ParsePipelined100(benchmark::State &state)
{
    const rc_http_limits lim = Limits();
    const std::string buf = Pipelined(100);
    rc_http_request req;

    for (auto _ : state) {
        size_t off = 0, consumed = 0;
        int n = 0;
        while (off < buf.size() &&
               ParseOne(buf.data() + off, buf.size() - off, lim, &req, &consumed)) {
            off += consumed;
            n++;
        }
        if (n != 100) {
            state.SkipWithError("pipelined buffer did not parse");
            break;
        }
        benchmark::DoNotOptimize(off);
    }
    state.SetItemsProcessed(state.iterations() * 100);
    state.SetBytesProcessed(state.iterations() * int64_t(buf.size()));
}
BENCHMARK(BM_ParsePipelined100);

// Peer: the blank-line search alone, over the same bytes.
void BM_Peer_FindHeadEndGet(benchmark::State &state)
{
    for (auto _ : state) {
        const void *p = memmem(kGet, sizeof(kGet) - 1, "\r\n\r\n", 4);
        benchmark::DoNotOptimize(p);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * int64_t(sizeof(kGet) - 1));
}
BENCHMARK(BM_Peer_FindHeadEndGet);

void BM_Peer_FindHeadEndPipelined100(benchmark::State &state)
{
    const std::string buf = Pipelined(100);

    for (auto _ : state) {
        size_t off = 0;
        int n = 0;
        while (off < buf.size()) {
            const char *p = static_cast<const char *>(
                memmem(buf.data() + off, buf.size() - off, "\r\n\r\n", 4));
            if (!p)
                break;
            off = size_t(p - buf.data()) + 4;
            n++;
        }
        benchmark::DoNotOptimize(n);
    }
    state.SetItemsProcessed(state.iterations() * 100);
    state.SetBytesProcessed(state.iterations() * int64_t(buf.size()));
}
BENCHMARK(BM_Peer_FindHeadEndPipelined100);

// A 64 KiB body in 4 KiB chunks, decoded in place (the copy of the encoded
// input is refreshed each iteration outside the timed region).
void BM_ChunkedDecode64K(benchmark::State &state)
{
    rc_http_limits lim = Limits();
    std::string enc;
    for (int i = 0; i < 16; i++) {
        enc += "1000\r\n";
        enc.append(4096, char('a' + i));
        enc += "\r\n";
    }
    enc += "0\r\n\r\n";
    std::vector<char> buf(enc.size());

    for (auto _ : state) {
        state.PauseTiming();
        memcpy(buf.data(), enc.data(), enc.size());
        state.ResumeTiming();
        rc_http_chunked c;
        rc_err err;
        size_t consumed = 0, out = 0;
        rc_http_chunked_init(&c);
        if (rc_http_chunked_decode(&c, buf.data(), buf.size(), &lim, &consumed, &out, &err) !=
                RC_PARSE_DONE ||
            out != 65536) {
            state.SkipWithError("chunked body did not decode");
            break;
        }
        benchmark::DoNotOptimize(out);
    }
    state.SetBytesProcessed(state.iterations() * int64_t(enc.size()));
}
BENCHMARK(BM_ChunkedDecode64K);

} // namespace

BENCHMARK_MAIN();
