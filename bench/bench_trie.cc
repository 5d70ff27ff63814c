// bench_trie.cc - the compiled filter trie vs the naive linear matcher.
//
// Match cost per event on one topic with N subscriptions of which exactly 10
// match, for three filter mixes:
//   0 eq     : N-10 distinct {"id": k} filters; the 10 matching share {"id": 7}
//   1 mixed  : ranges ($gt/$lt/$gte) and $in lists that the event does not satisfy;
//              5 matching {"price": {"$gt": i}} and 5 matching {"cat": {"$in": [...]}}
//   2 same90 : 90% identical {"status": "draft"}, 10% distinct {"id": k};
//              the 10 matching share {"status": "published"}
// plus subscribe+unsubscribe cost next to a populated trie, and memory per
// subscription (counter bytes_per_sub, from rc_trie_stats).
// Run: build-*/bench/bench_trie --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ringcast/filter.h"
#include "ringcast/topic.h"
#include "ringcast/trie.h"

namespace
{

const char kTopic[] = "orders.eu.created";
const char kEvent[] =
    R"({"id": 7, "price": 50, "cat": "hit", "status": "published", "title": "x"})";
const char *const kScenario[] = {"eq", "mixed", "same90"};

rc_filter *compile(const std::string &text)
{
    rc_filter *f = nullptr;
    rc_err err{};
    if (rc_filter_parse_text(text.data(), text.size(), nullptr, &f, &err) != 0) {
        std::fprintf(stderr, "bench_trie: %s: %s\n", text.c_str(), err.msg);
        std::abort();
    }
    return f;
}

std::string filter_text(int scenario, long i)
{
    char b[160];
    if (scenario == 0) {
        if (i < 10)
            return R"({"id": 7})";
        std::snprintf(b, sizeof(b), R"({"id": %ld})", 1000 + i);
    } else if (scenario == 1) {
        if (i < 5)
            std::snprintf(b, sizeof(b), R"({"price": {"$gt": %ld}})", i);
        else if (i < 10)
            std::snprintf(b, sizeof(b), R"({"cat": {"$in": ["hit", "x%ld"]}})", i);
        else if (i % 4 == 0)
            std::snprintf(b, sizeof(b), R"({"price": {"$gt": %ld}})", 1000000 + i);
        else if (i % 4 == 1)
            std::snprintf(b, sizeof(b), R"({"price": {"$lt": %ld}})", -i);
        else if (i % 4 == 2)
            std::snprintf(b, sizeof(b), R"({"cat": {"$in": ["c%ld", "d%ld", "e%ld"]}})", i, i, i);
        else
            std::snprintf(b, sizeof(b),
                          R"({"price": {"$gte": %ld}, "cat": {"$in": ["c%ld", "d%ld"]}})",
                          1000000 + i, i, i);
    } else {
        if (i < 10)
            return R"({"status": "published"})";
        if (i % 10 != 0)
            return R"({"status": "draft"})";
        std::snprintf(b, sizeof(b), R"({"id": %ld})", 1000 + i);
    }
    return b;
}

// One populated trie (and, for the naive side, the same filters in an array).
struct World {
    int scenario = -1;
    long n = 0;
    bool naive = false;
    rc_trie *trie = nullptr;
    std::vector<rc_filter *> filters; // only kept when naive
    json_t *event = nullptr;

    void clear()
    {
        rc_trie_free(trie);
        trie = nullptr;
        for (rc_filter *f : filters)
            rc_filter_free(f);
        filters.clear();
        json_decref(event);
        event = nullptr;
    }

    void build(int sc, long count, bool keep)
    {
        if (sc == scenario && count == n && (naive || !keep))
            return;
        clear();
        scenario = sc;
        n = count;
        naive = keep;
        trie = rc_trie_new();
        json_error_t jerr;
        event = json_loads(kEvent, 0, &jerr);
        for (long i = 0; i < count; i++) {
            rc_filter *f = compile(filter_text(sc, i));
            rc_err err{};
            if (!rc_trie_add(trie, kTopic, sizeof(kTopic) - 1, f, (void *)(uintptr_t)(i + 1), &err))
                std::abort();
            if (keep)
                filters.push_back(f);
            else
                rc_filter_free(f);
        }
    }
};

World world;

void count_cb(void *ctx, void *)
{
    ++*static_cast<size_t *>(ctx);
}

void set_memory_counters(benchmark::State &state)
{
    struct rc_trie_stats st;
    rc_trie_stats(world.trie, &st);
    state.counters["subs"] = (double)st.subs;
    state.counters["filters"] = (double)st.filters;
    state.counters["bytes_per_sub"] = (double)st.bytes / (double)(st.subs ? st.subs : 1);
}

void BM_trie_match(benchmark::State &state)
{
    int sc = (int)state.range(0);
    world.build(sc, state.range(1), false);
    state.SetLabel(kScenario[sc]);
    size_t hits = 0;
    for (auto _ : state) {
        hits = 0;
        size_t r =
            rc_trie_match(world.trie, kTopic, sizeof(kTopic) - 1, world.event, count_cb, &hits);
        benchmark::DoNotOptimize(r);
    }
    if (hits != 10)
        state.SkipWithError("expected 10 matches");
    state.counters["matches"] = (double)hits;
    set_memory_counters(state);
}

void BM_naive_match(benchmark::State &state)
{
    int sc = (int)state.range(0);
    world.build(sc, state.range(1), true);
    state.SetLabel(kScenario[sc]);
    size_t hits = 0;
    const size_t tn = sizeof(kTopic) - 1;
    for (auto _ : state) {
        hits = 0;
        // Every subscription of the world is on kTopic, as in the trie.
        for (rc_filter *f : world.filters)
            if (rc_topic_match(kTopic, tn, kTopic, tn) && rc_filter_eval(f, world.event))
                hits++;
        benchmark::DoNotOptimize(hits);
    }
    if (hits != 10)
        state.SkipWithError("expected 10 matches");
    state.counters["matches"] = (double)hits;
}

// One subscribe + unsubscribe of a new distinct filter next to N others.
void BM_trie_sub_unsub(benchmark::State &state)
{
    int sc = (int)state.range(0);
    world.build(sc, state.range(1), false);
    state.SetLabel(kScenario[sc]);
    std::vector<rc_filter *> fresh;
    for (long i = 0; i < 1024; i++)
        fresh.push_back(compile(filter_text(sc, 50000000 + i)));
    size_t k = 0;
    for (auto _ : state) {
        rc_err err{};
        rc_trie_sub *s =
            rc_trie_add(world.trie, kTopic, sizeof(kTopic) - 1, fresh[k++ & 1023], nullptr, &err);
        rc_trie_remove(world.trie, s);
    }
    for (rc_filter *f : fresh)
        rc_filter_free(f);
    state.SetItemsProcessed(state.iterations());
}

// Filling an empty trie with N precompiled filters, then freeing it.
void BM_trie_bulk_subscribe(benchmark::State &state)
{
    int sc = (int)state.range(0);
    long n = state.range(1);
    state.SetLabel(kScenario[sc]);
    std::vector<rc_filter *> fs;
    for (long i = 0; i < n; i++)
        fs.push_back(compile(filter_text(sc, i)));
    for (auto _ : state) {
        rc_trie *t = rc_trie_new();
        for (long i = 0; i < n; i++) {
            rc_err err{};
            benchmark::DoNotOptimize(
                rc_trie_add(t, kTopic, sizeof(kTopic) - 1, fs[(size_t)i], nullptr, &err));
        }
        rc_trie_free(t);
    }
    for (rc_filter *f : fs)
        rc_filter_free(f);
    state.SetItemsProcessed(state.iterations() * n);
}

void match_args(benchmark::internal::Benchmark *b)
{
    for (int sc = 0; sc < 3; sc++)
        for (long n : {1000L, 10000L, 100000L, 1000000L})
            b->Args({sc, n});
}

void naive_args(benchmark::internal::Benchmark *b)
{
    for (int sc = 0; sc < 3; sc++)
        for (long n : {1000L, 10000L, 100000L})
            b->Args({sc, n});
}

void sub_args(benchmark::internal::Benchmark *b)
{
    for (int sc = 0; sc < 3; sc++)
        b->Args({sc, 100000});
}

} // namespace

BENCHMARK(BM_trie_match)->Apply(match_args)->ArgNames({"mix", "subs"});
BENCHMARK(BM_naive_match)->Apply(naive_args)->ArgNames({"mix", "subs"});
BENCHMARK(BM_trie_sub_unsub)->Apply(sub_args)->ArgNames({"mix", "subs"});
BENCHMARK(BM_trie_bulk_subscribe)
    ->Args({0, 100000})
    ->Args({1, 100000})
    ->Args({2, 100000})
    ->ArgNames({"mix", "subs"})
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
