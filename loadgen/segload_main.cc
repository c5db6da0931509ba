// segload: the standard benchmark of shared/BENCHMARK.md against a running segd shard or
// cluster. Parses flags, runs the selected phases (loadgen/bench.h) and writes the figures:
// a table on stdout, progress on stderr, --json and --csv files for machines.
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "loadgen/bench.h"
#include "loadgen/cluster.h"
#include "loadgen/monitor.h"
#include "loadgen/report.h"
#include "loadgen/window.h"
#include "server/command_line.h"

ABSL_FLAG(std::string, servers, "127.0.0.1:7070",
          "comma list of segd shards host:port; with several, updates and profiles are routed "
          "by the client library's ketama ring");
ABSL_FLAG(uint64_t, profiles, 1'000'000, "profiles u0 … u{N-1}");
ABSL_FLAG(double, duration, 30, "seconds measured in each ingest run (after the warm-up)");
ABSL_FLAG(double, warmup, 5, "seconds of warm-up before each measured window");
ABSL_FLAG(std::string, rate, "max",
          "updates/s over the cluster, open loop; 'max': as fast as acks come (the latency "
          "phase then runs at half the measured maximum)");
ABSL_FLAG(int, streams, 4, "parallel Ingest.Stream calls per server (and Redis connections)");
ABSL_FLAG(uint32_t, batch, 512, "updates per UpdateBatch");
ABSL_FLAG(int, in_flight, 8, "batches sent and not yet acked, per stream");
ABSL_FLAG(std::string, skew, "uniform", "key distribution of updates: uniform or zipf (0.99)");
ABSL_FLAG(uint64_t, seed, 1, "workload seed");
ABSL_FLAG(std::string, only, "",
          "comma list of phases to run: preload, ingest, latency, fanout, backfill, funnel, "
          "redis (empty: all; redis only with --redis)");
ABSL_FLAG(int, subscribers, 4, "subscribers of the fanout phase");
ABSL_FLAG(uint32_t, replay_batch, 1000, "profiles per ReplayRequest");
ABSL_FLAG(int, replay_calls, 4, "parallel Ingest.Replay calls per server");
ABSL_FLAG(int, build_threads, 0, "threads building profiles for the preload (0: one per core)");
ABSL_FLAG(uint64_t, preload_buffer_mb, 0,
          "encoded profiles built before the replay clock starts, in MiB (0: up to half of "
          "the memory available)");
ABSL_FLAG(std::string, redis, "",
          "host:port of a Redis to store the same workload in, for the redis phase");
ABSL_FLAG(std::string, json, "", "write the figures as JSON to this file");
ABSL_FLAG(std::string, csv, "", "write a per-second series (rates, latencies) as CSV to this file");
ABSL_FLAG(std::string, progress, "auto",
          "a progress line each second on stderr: on, off, or auto (when stderr is a terminal)");
ABSL_FLAG(double, connect_timeout, 10, "seconds to wait for each server");

namespace segd::load {
namespace {

constexpr int kUsageError = 2;

int Usage(const std::string& message) {
  std::fprintf(stderr, "segload: %s\n", message.c_str());
  return kUsageError;
}

// A line of /proc/meminfo ("MemTotal", "MemAvailable"), in bytes; 0 if not there.
uint64_t MemInfoBytes(std::string_view field) {
  std::ifstream meminfo("/proc/meminfo");
  std::string name;
  uint64_t kb = 0;
  std::string unit;
  while (meminfo >> name >> kb >> unit) {
    if (name.ends_with(':') && std::string_view(name).substr(0, name.size() - 1) == field) {
      return kb * 1024;
    }
  }
  return 0;
}

// The CPU as /proc/cpuinfo names its first processor: the model name, and the family and
// model numbers that tell apart CPUs sold under one name ("AMD EPYC (family 25, model 17)").
std::string CpuModel() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string name, family, model;
  for (std::string line; std::getline(cpuinfo, line) && !line.empty();) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const absl::string_view key =
        absl::StripTrailingAsciiWhitespace(absl::string_view(line).substr(0, colon));
    const std::string value(absl::StripAsciiWhitespace(absl::string_view(line).substr(colon + 1)));
    if (key == "model name") name = value;
    if (key == "cpu family") family = value;
    if (key == "model") model = value;
  }
  if (name.empty()) return "unknown";
  if (family.empty() || model.empty()) return name;
  return absl::StrCat(name, " (family ", family, ", model ", model, ")");
}

std::string KernelRelease() {
  utsname u{};
  return uname(&u) == 0 ? absl::StrCat(u.sysname, " ", u.release) : "unknown";
}

std::string UtcNow() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int Main() {
  BenchOptions options;
  const std::vector<std::string> servers =
      absl::StrSplit(absl::GetFlag(FLAGS_servers), ',', absl::SkipWhitespace());
  if (servers.empty()) return Usage("--servers: give at least one host:port");
  options.profiles = absl::GetFlag(FLAGS_profiles);
  if (options.profiles == 0 || options.profiles > UINT32_MAX) {
    return Usage("--profiles: must be between 1 and 4294967295");
  }
  options.seed = absl::GetFlag(FLAGS_seed);
  options.duration_s = absl::GetFlag(FLAGS_duration);
  options.warmup_s = absl::GetFlag(FLAGS_warmup);
  if (!(options.duration_s > 0)) return Usage("--duration: must be positive");
  if (!(options.warmup_s >= 0)) return Usage("--warmup: must not be negative");
  const std::string rate = absl::GetFlag(FLAGS_rate);
  if (rate != "max") {
    if (!absl::SimpleAtod(rate, &options.rate) || !(options.rate > 0) ||
        !std::isfinite(options.rate)) {
      return Usage("--rate: expected 'max' or a positive number of updates/s");
    }
  }
  const std::string skew = absl::GetFlag(FLAGS_skew);
  if (skew == "zipf") {
    options.skew = KeySkew::kZipf;
  } else if (skew != "uniform") {
    return Usage("--skew: expected uniform or zipf");
  }
  options.streams = absl::GetFlag(FLAGS_streams);
  options.batch = absl::GetFlag(FLAGS_batch);
  options.in_flight = absl::GetFlag(FLAGS_in_flight);
  options.subscribers = absl::GetFlag(FLAGS_subscribers);
  options.replay_batch = absl::GetFlag(FLAGS_replay_batch);
  options.replay_calls = absl::GetFlag(FLAGS_replay_calls);
  if (options.streams < 1 || options.batch < 1 || options.in_flight < 1 ||
      options.subscribers < 1 || options.replay_batch < 1 || options.replay_calls < 1) {
    return Usage(
        "--streams, --batch, --in-flight, --subscribers, --replay-batch and --replay-calls "
        "must be at least 1");
  }
  options.build_threads = absl::GetFlag(FLAGS_build_threads);
  if (options.build_threads <= 0) {
    options.build_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  options.preload_buffer_bytes = absl::GetFlag(FLAGS_preload_buffer_mb) << 20;
  if (options.preload_buffer_bytes == 0) {
    // Enough to build every profile before the clock on a machine with the room (4 M
    // standard profiles are ~5.2 GB encoded), so that the replay rate is the servers'.
    constexpr uint64_t kMinBuffer = uint64_t{256} << 20;
    options.preload_buffer_bytes = std::max(kMinBuffer, MemInfoBytes("MemAvailable") / 2);
  }
  options.redis = absl::GetFlag(FLAGS_redis);

  const std::vector<std::string> only =
      absl::StrSplit(absl::GetFlag(FLAGS_only), ',', absl::SkipWhitespace());
  for (const std::string& phase : only) {
    if (std::find(std::begin(kPhases), std::end(kPhases), phase) == std::end(kPhases)) {
      return Usage(absl::StrCat(
          "--only: unknown phase '", phase, "' (phases: ",
          absl::StrJoin(kPhases, ",", [](std::string* out, std::string_view p) { out->append(p); }),
          ")"));
    }
    options.phases.insert(phase);
  }
  if (options.phases.empty()) {
    for (std::string_view phase : kPhases) {
      if (phase != "redis" || !options.redis.empty()) options.phases.emplace(phase);
    }
  }
  if (options.phases.count("redis") > 0 && options.redis.empty()) {
    return Usage("--only=redis: give the Redis to compare with, --redis=HOST:PORT");
  }

  const std::string progress = absl::GetFlag(FLAGS_progress);
  if (progress == "auto") {
    options.progress = isatty(STDERR_FILENO) != 0;
  } else if (progress == "on" || progress == "off") {
    options.progress = progress == "on";
  } else {
    return Usage("--progress: expected on, off or auto");
  }

  std::unique_ptr<SeriesWriter> series;
  if (const std::string csv = absl::GetFlag(FLAGS_csv); !csv.empty()) {
    absl::StatusOr<std::unique_ptr<SeriesWriter>> s = SeriesWriter::Open(csv, MonoNs());
    if (!s.ok()) return Usage(std::string(s.status().message()));
    series = *std::move(s);
    options.series = series.get();
  }

  absl::StatusOr<std::unique_ptr<Cluster>> cluster =
      Cluster::Connect(servers, absl::Seconds(std::max(0.1, absl::GetFlag(FLAGS_connect_timeout))));
  if (!cluster.ok()) {
    std::fprintf(stderr, "segload: %s\n", std::string(cluster.status().message()).c_str());
    return 1;
  }

  Report report;
  std::vector<std::string> quoted;
  for (const std::string& s : servers) quoted.push_back(JsonString(s));
  std::vector<std::string> phases;
  for (std::string_view p : kPhases) {
    if (options.phases.count(p) > 0) phases.push_back(JsonString(p));
  }
  report.SetConfig("servers", absl::StrCat("[", absl::StrJoin(quoted, ", "), "]"));
  report.SetConfig("profiles", JsonNumber(static_cast<double>(options.profiles)));
  report.SetConfig("duration_s", JsonNumber(options.duration_s));
  report.SetConfig("warmup_s", JsonNumber(options.warmup_s));
  report.SetConfig("rate", options.rate > 0 ? JsonNumber(options.rate) : JsonString("max"));
  report.SetConfig("streams_per_server", JsonNumber(options.streams));
  report.SetConfig("batch", JsonNumber(options.batch));
  report.SetConfig("in_flight", JsonNumber(options.in_flight));
  report.SetConfig("skew", JsonString(skew));
  report.SetConfig("seed", JsonNumber(static_cast<double>(options.seed)));
  report.SetConfig("subscribers", JsonNumber(options.subscribers));
  report.SetConfig("phases", absl::StrCat("[", absl::StrJoin(phases, ", "), "]"));
  report.SetConfig("redis", options.redis.empty() ? "null" : JsonString(options.redis));
  report.SetConfig("date", JsonString(UtcNow()));
  const unsigned nproc = std::thread::hardware_concurrency();
  report.SetConfig("nproc", JsonNumber(nproc));
  const uint64_t mem_total = MemInfoBytes("MemTotal");
  report.SetConfig("mem_total_bytes", JsonNumber(static_cast<double>(mem_total)));
  const std::string cpu = CpuModel();
  const std::string kernel = KernelRelease();
  report.SetConfig("cpu", JsonString(cpu));
  report.SetConfig("kernel", JsonString(kernel));

  std::fprintf(stderr, "segload: %zu server(s) %s, %s profiles, %s keys, %s\n", servers.size(),
               absl::StrJoin(servers, ",").c_str(),
               HumanNumber(static_cast<double>(options.profiles)).c_str(), skew.c_str(),
               absl::StrJoin(options.phases, ",").c_str());
  std::fprintf(stderr, "segload: on %s, %u CPUs, %.1f GiB, %s\n", cpu.c_str(), nproc,
               static_cast<double>(mem_total) / (1 << 30), kernel.c_str());
  Bench bench(options, **cluster, report);
  const bool ok = bench.Run();
  report.PrintTable(stdout);
  std::fflush(stdout);
  if (const std::string json = absl::GetFlag(FLAGS_json); !json.empty()) {
    std::ofstream file(json);
    file << report.ToJson();
    if (!file) {
      std::fprintf(stderr, "segload: --json: cannot write %s\n", json.c_str());
      return 1;
    }
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace segd::load

int main(int argc, char** argv) {
  segd::server::ParseCommandLine(
      argc, argv, "loadgen/segload_main.cc",
      "the standard benchmark (shared/BENCHMARK.md) against a running segd shard or cluster.\n"
      "Usage: segload [--servers=127.0.0.1:7070] [--profiles=N] [--duration=S] [--rate=max|N]\n"
      "               [--only=preload,ingest,latency,fanout,backfill,funnel,redis] [flags]\n"
      "Flag names take dashes or underscores alike (--in-flight, --in_flight).");
  // As segd (server/main.cc): no debugging deadlock detector on every absl::Mutex lock.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return segd::load::Main();
}
