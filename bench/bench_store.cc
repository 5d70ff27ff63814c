// bench_store.cc - notification creates per second and ack latency (submit ->
// reply, i.e. after the commit) for the SQLite and the PostgreSQL engine side
// by side in one run: bursts of 1,000 (and 100) creates submitted at once, so
// group commit batches them, on a store with its storage thread(s). PostgreSQL is
// a local 15 this process starts (fsync on), with one connection and with a pool
// of four (postgres_pool); SQLite runs synchronous=full. Recipients are spread
// over 100 users.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

#include "shim_store.h"

namespace
{

void run(benchmark::State &state, int pg)
{
    const size_t burst = static_cast<size_t>(state.range(0));
    const unsigned pool = pg ? static_cast<unsigned>(state.range(1)) : 1;
    rc_bench_store *b = rc_bench_store_new(pg, pool, burst);
    if (!b) {
        state.SkipWithError(pg ? "PostgreSQL 15 could not be started (postgresql-15)"
                               : "the SQLite store could not be opened");
        return;
    }
    std::vector<double> p50, p99;
    size_t failed = 0, total = 0;
    for (auto _ : state) {
        rc_bench_store_result r{};
        if (rc_bench_store_burst(b, &r) != 0) {
            state.SkipWithError("out of memory");
            break;
        }
        p50.push_back(r.p50_us);
        p99.push_back(r.p99_us);
        failed += r.failed;
        total += burst;
    }
    rc_bench_store_free(b);
    std::sort(p50.begin(), p50.end());
    std::sort(p99.begin(), p99.end());
    state.SetItemsProcessed(static_cast<int64_t>(total));
    if (!p99.empty()) {
        state.counters["p50_ack_us"] = p50[p50.size() / 2];
        state.counters["p99_ack_us"] = p99[p99.size() / 2];
    }
    state.counters["failed"] = static_cast<double>(failed);
}

void BM_store_create_sqlite(benchmark::State &state)
{
    run(state, 0);
}

void BM_store_create_postgres(benchmark::State &state)
{
    run(state, 1);
}

} // namespace

BENCHMARK(BM_store_create_sqlite)
    ->Arg(100)
    ->Arg(1000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
// Args: burst, postgres_pool (connections)
BENCHMARK(BM_store_create_postgres)
    ->Args({100, 1})
    ->Args({1000, 1})
    ->Args({100, 4})
    ->Args({1000, 4})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
