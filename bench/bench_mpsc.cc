// bench_mpsc.cc - MPSC queue throughput (messages/s) with 1 and 2 producer
// threads and one consumer, the inbox pattern of the shards. Google Benchmark
// through the C API; the consumer is the benchmark thread.
#include <benchmark/benchmark.h>

#include <thread>
#include <vector>

#include "shim.h"

namespace
{

// Producers push `per` preallocated nodes each; the consumer pops them all.
void run(benchmark::State &state, int producers)
{
    const size_t per = 1 << 18;
    rc_bench_queue *q = rc_bench_queue_new(producers, per);
    size_t total = 0;
    for (auto _ : state) {
        rc_bench_queue_reset(q);
        std::vector<std::thread> th;
        for (int p = 0; p < producers; p++)
            th.emplace_back([=] {
                for (size_t i = 0; i < per; i++)
                    rc_bench_queue_push(q, p, i);
            });
        size_t got = 0;
        while (got < per * static_cast<size_t>(producers))
            got += static_cast<size_t>(rc_bench_queue_pop(q));
        for (auto &t : th)
            t.join();
        total += got;
    }
    rc_bench_queue_free(q);
    state.SetItemsProcessed(static_cast<int64_t>(total));
}

void BM_mpsc_1_producer(benchmark::State &state)
{
    run(state, 1);
}
void BM_mpsc_2_producers(benchmark::State &state)
{
    run(state, 2);
}

} // namespace

BENCHMARK(BM_mpsc_1_producer)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_mpsc_2_producers)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
