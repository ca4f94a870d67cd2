// Micro-benchmarks for proto/: parsing pipelined GETs the way redis-benchmark sends them, and
// writing bulk replies. The numbers to compare are ns per command and per reply.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <string_view>

#include "proto/resp_parser.h"
#include "proto/resp_writer.h"

namespace corral::proto {
namespace {

// `count` pipelined "GET key:000000001234"-style commands with distinct keys.
std::string PipelinedGets(int count) {
  std::string batch;
  char key[32];
  for (int i = 0; i < count; ++i) {
    const int len = std::snprintf(key, sizeof(key), "key:%012d", i);
    batch += "*2\r\n$3\r\nGET\r\n$" + std::to_string(len) + "\r\n";
    batch.append(key, static_cast<size_t>(len));
    batch += "\r\n";
  }
  return batch;
}

// The whole batch is in memory: the cost of the parser alone.
void BM_ParsePipelinedGet(benchmark::State& state) {
  const int count = static_cast<int>(state.range(0));
  const std::string batch = PipelinedGets(count);
  RespParser parser;
  for (auto _ : state) {
    std::string_view rest = batch;
    int parsed = 0;
    while (parser.Parse(rest) == ParseStatus::kCommand) {
      benchmark::DoNotOptimize(parser.args().data());
      rest.remove_prefix(parser.consumed());
      ++parsed;
    }
    if (parsed != count) state.SkipWithError("parse failed");
  }
  state.SetItemsProcessed(state.iterations() * count);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(batch.size()));
}
BENCHMARK(BM_ParsePipelinedGet)->Arg(1)->Arg(16)->Arg(1000);

// The batch arrives in 16 KiB reads, so commands are cut across reads and the caller compacts
// its buffer after each read, as a connection does.
void BM_ParsePipelinedGetInReads(benchmark::State& state) {
  constexpr size_t kRead = 16 * 1024;
  const std::string batch = PipelinedGets(10000);
  RespParser parser;
  std::string buffer;
  buffer.reserve(2 * kRead);
  for (auto _ : state) {
    for (size_t off = 0; off < batch.size(); off += kRead) {
      buffer.append(batch, off, kRead);
      size_t done = 0;
      while (parser.Parse(std::string_view(buffer).substr(done)) == ParseStatus::kCommand) {
        benchmark::DoNotOptimize(parser.args().data());
        done += parser.consumed();
      }
      buffer.erase(0, done);
    }
    if (!buffer.empty()) state.SkipWithError("unparsed bytes left");
  }
  state.SetItemsProcessed(state.iterations() * 10000);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(batch.size()));
}
BENCHMARK(BM_ParsePipelinedGetInReads);

// redis-benchmark's PING_INLINE test.
void BM_ParseInlinePing(benchmark::State& state) {
  std::string batch;
  for (int i = 0; i < 1000; ++i) batch += "PING\r\n";
  RespParser parser;
  for (auto _ : state) {
    std::string_view rest = batch;
    while (parser.Parse(rest) == ParseStatus::kCommand) {
      benchmark::DoNotOptimize(parser.args().data());
      rest.remove_prefix(parser.consumed());
    }
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_ParseInlinePing);

// 100 bulk replies of range(0) bytes into a reused output buffer.
void BM_WriteBulk(benchmark::State& state) {
  const std::string value(static_cast<size_t>(state.range(0)), 'v');
  std::string out;
  for (auto _ : state) {
    out.clear();
    for (int i = 0; i < 100; ++i) AppendBulk(out, value);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * 100);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}
BENCHMARK(BM_WriteBulk)->Arg(3)->Arg(100)->Arg(4096);

void BM_WriteInteger(benchmark::State& state) {
  std::string out;
  for (auto _ : state) {
    out.clear();
    for (int64_t i = 0; i < 100; ++i) AppendInteger(out, i * 7919);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_WriteInteger);

}  // namespace
}  // namespace corral::proto
