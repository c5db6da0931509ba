// segd-engine-bench: the standard workload (shared/BENCHMARK.md) run in-process
// against one Engine with one shard on a manual clock, single-threaded, no gRPC.
//
// Phases, in this order (--only selects some): preload (Replay of N profiles),
// segments (PutSegment of the 20 standard segments), memory (RSS and the engine's own
// count around preload), ingest (Apply of the update stream in batches), backfill
// (PutSegment of one new segment over every profile), funnel (a 3-step Funnel).
// Only engine calls are timed: inputs are generated before each timed stretch.
//
// Progress goes to stderr; the table of figures to stdout; --json FILE writes the
// same figures as JSON.

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/clock.h"
#include "core/engine.h"
#include "loadgen/workload.h"

ABSL_FLAG(uint64_t, profiles, 1'000'000, "profiles to preload (keys u0 … u{N-1})");
ABSL_FLAG(uint64_t, updates, 5'000'000, "updates to apply in the ingest phase");
ABSL_FLAG(uint64_t, seed, 1, "workload seed");
ABSL_FLAG(std::string, skew, "uniform", "key distribution of updates: uniform|zipf");
ABSL_FLAG(uint32_t, batch, 512, "updates per Apply call");
ABSL_FLAG(std::string, json, "", "write the figures as JSON to this file");
ABSL_FLAG(std::string, only, "",
          "comma list of phases to run (preload,segments,memory,ingest,backfill,funnel); "
          "empty: all");

namespace segd {
namespace {

// The manual clock's start: fixed, so that runs see the same windows.
constexpr int64_t kStartMs = 1'700'000'000'000;
constexpr uint64_t kPreloadChunk = 4096;     // profiles per Replay call
constexpr size_t kIngestChunkBatches = 128;  // batches generated ahead of each timed stretch
constexpr uint64_t kUpdatesPerMs = 1000;     // the clock advances 1 ms per 1000 updates

const std::vector<std::string> kPhases = {"preload", "segments", "memory",
                                          "ingest",  "backfill", "funnel"};

// One figure of the result table. `target` is a bound from the issue: a floor when
// higher_is_better, else a ceiling.
struct Figure {
  Figure(std::string name, double value, std::string unit,
         std::optional<double> target = std::nullopt, bool higher_is_better = true)
      : name(std::move(name)),
        value(value),
        unit(std::move(unit)),
        target(target),
        higher_is_better(higher_is_better) {}

  std::string name;
  double value;
  std::string unit;
  std::optional<double> target;
  bool higher_is_better;

  bool met() const { return higher_is_better ? value >= *target : value <= *target; }
};

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// Resident set size of this process, from /proc/self/statm; 0 if unreadable.
uint64_t RssBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int read = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return read == 2 ? resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

std::string FormatValue(double v) {
  if (v >= 1000) {  // thousands separators for rates and counts
    const std::string digits = absl::StrFormat("%.0f", v);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
      if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
      out.push_back(digits[i]);
    }
    return out;
  }
  return absl::StrFormat("%.4g", v);
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

void PrintTable(const std::vector<Figure>& figures) {
  int name_w = 6, value_w = 5, unit_w = 4;
  for (const Figure& f : figures) {
    name_w = std::max(name_w, static_cast<int>(f.name.size()));
    value_w = std::max(value_w, static_cast<int>(FormatValue(f.value).size()));
    unit_w = std::max(unit_w, static_cast<int>(f.unit.size()));
  }
  const auto row = [&](std::string_view a, std::string_view b, std::string_view c,
                       std::string_view d, std::string_view e) {
    std::printf("%s\n",
                absl::StrFormat("%-*s  %*s  %-*s  %-16s %s", name_w, a, value_w, b, unit_w, c, d, e)
                    .c_str());
  };
  row("figure", "value", "unit", "target", "");
  for (const Figure& f : figures) {
    std::string target, verdict;
    if (f.target) {
      target = absl::StrCat(f.higher_is_better ? ">= " : "<= ", FormatValue(*f.target));
      verdict = f.met() ? "ok" : "MISSED";
    }
    row(f.name, FormatValue(f.value), f.unit, target, verdict);
  }
}

bool WriteJson(const std::string& path, const std::vector<Figure>& figures) {
  std::string out = absl::StrFormat(
      "{\n  \"benchmark\": \"segd-engine-bench\",\n  \"config\": {\"profiles\": %d, "
      "\"updates\": %d, \"seed\": %d, \"skew\": \"%s\", \"batch\": %d, \"shards\": 1},\n"
      "  \"figures\": [",
      absl::GetFlag(FLAGS_profiles), absl::GetFlag(FLAGS_updates), absl::GetFlag(FLAGS_seed),
      JsonEscape(absl::GetFlag(FLAGS_skew)), absl::GetFlag(FLAGS_batch));
  for (size_t i = 0; i < figures.size(); ++i) {
    const Figure& f = figures[i];
    absl::StrAppendFormat(&out, "%s\n    {\"name\": \"%s\", \"value\": %.6g, \"unit\": \"%s\"",
                          i == 0 ? "" : ",", JsonEscape(f.name), f.value, JsonEscape(f.unit));
    if (f.target) {
      absl::StrAppendFormat(&out, ", \"target\": %.6g, \"target_kind\": \"%s\", \"met\": %s",
                            *f.target,
                            f.higher_is_better ? ">=" : "<=", f.met() ? "true" : "false");
    }
    out += "}";
  }
  out += "\n  ]\n}\n";
  std::ofstream file(path);
  file << out;
  return static_cast<bool>(file);
}

// The benchmark's state across phases.
class Bench {
 public:
  Bench(const WorkloadOptions& workload_options, std::set<std::string> phases)
      : phases_(std::move(phases)),
        workload_(workload_options),
        clock_(kStartMs),
        engine_(EngineOptions{}, 1, clock_) {}

  // Runs the selected phases; false if an engine call failed.
  bool Run() {
    if (Selected("preload") || Selected("memory")) Preload();
    if (Selected("segments")) Segments();
    if (Selected("ingest")) Ingest();
    if (Selected("backfill")) Backfill();
    if (Selected("funnel")) Funnel();
    return ok_;
  }

  const std::vector<Figure>& figures() const { return figures_; }

 private:
  bool Selected(const std::string& phase) const {
    return phases_.empty() || phases_.count(phase) > 0;
  }

  void Fail(std::string_view what, std::string_view message) {
    std::fprintf(stderr, "error: %.*s: %.*s\n", static_cast<int>(what.size()), what.data(),
                 static_cast<int>(message.size()), message.data());
    ok_ = false;
  }

  void Preload() {
    const uint64_t n = workload_.options().profiles;
    const uint64_t rss_before = RssBytes();
    std::vector<ProfileData> chunk;
    double generate_s = 0, replay_s = 0;
    uint64_t errors = 0, events = 0, next_report = n / 10;
    for (uint64_t begin = 0; begin < n; begin += kPreloadChunk) {
      const uint64_t end = std::min(n, begin + kPreloadChunk);
      Stopwatch generate;
      chunk.clear();
      for (uint64_t i = begin; i < end; ++i) chunk.push_back(workload_.MakeProfile(i, kStartMs));
      generate_s += generate.Seconds();
      Stopwatch replay;
      const ReplayResult result = engine_.Replay(chunk, /*quiet=*/true);
      replay_s += replay.Seconds();
      events += result.events;
      if (!result.errors.empty() && errors == 0) Fail("Replay", result.errors[0].message);
      errors += result.errors.size();
      if (end >= next_report || end == n) {
        std::fprintf(stderr, "preload: %llu/%llu profiles, %.0f profiles/s\n",
                     static_cast<unsigned long long>(end), static_cast<unsigned long long>(n),
                     static_cast<double>(end) / replay_s);
        next_report += n / 10;
      }
    }
    chunk = {};
#ifdef __GLIBC__
    malloc_trim(0);  // return the generator's freed chunks, so RSS is the engine's
#endif
    const uint64_t rss_after = RssBytes();
    if (Selected("preload")) {
      figures_.push_back({"preload", n / replay_s, "profiles/s"});
      figures_.push_back({"preload events", events / replay_s, "events/s"});
      figures_.push_back({"preload errors", static_cast<double>(errors), "updates"});
      figures_.push_back({"preload generation", n / generate_s, "profiles/s"});
    }
    if (Selected("memory") && n > 0) {
      const EngineStats stats = engine_.Stats();
      figures_.push_back({"RSS before preload", rss_before / 1048576.0, "MiB"});
      figures_.push_back({"RSS after preload", rss_after / 1048576.0, "MiB"});
      figures_.push_back({"memory (RSS)", static_cast<double>(rss_after - rss_before) / n,
                          "B/profile", 400.0, false});
      figures_.push_back({"memory (engine)", static_cast<double>(stats.memory_bytes) / n,
                          "B/profile", 400.0, false});
    }
  }

  void Segments() {
    const std::vector<SegmentSpec> specs = Workload::StandardSegments();
    double total_s = 0;
    for (const SegmentSpec& spec : specs) {
      Stopwatch put;
      const auto result = engine_.PutSegment(spec, /*dry_run=*/false);
      const double s = put.Seconds();
      total_s += s;
      if (!result.ok()) {
        Fail(absl::StrCat("PutSegment ", spec.id), result.status().ToString());
        continue;
      }
      std::fprintf(stderr, "segments: %-18s %8.1f ms  %llu members\n", spec.id.c_str(), s * 1000,
                   static_cast<unsigned long long>(result->entered));
      figures_.push_back({absl::StrCat("segment ", spec.id), s * 1000, "ms"});
    }
    figures_.push_back({"segments total", total_s, "s"});
    figures_.push_back({"segments mean", total_s * 1000 / specs.size(), "ms/segment"});
  }

  void Ingest() {
    const uint64_t total = absl::GetFlag(FLAGS_updates);
    const size_t batch_size = std::max<uint32_t>(1, absl::GetFlag(FLAGS_batch));
    std::vector<std::vector<ProfileUpdate>> batches(kIngestChunkBatches);
    std::vector<int64_t> batch_now(kIngestChunkBatches);
    const int64_t base_ms = clock_.NowMs();
    const uint64_t changes_before = engine_.Stats().changes_emitted;
    double generate_s = 0, apply_s = 0;
    uint64_t done = 0, errors = 0, next_report = total / 10;
    while (done < total) {
      // Generate a chunk of batches (untimed for the engine's figure).
      Stopwatch generate;
      size_t used = 0;
      for (uint64_t at = done; used < batches.size() && at < total; ++used) {
        const size_t size = static_cast<size_t>(std::min<uint64_t>(batch_size, total - at));
        batch_now[used] = base_ms + static_cast<int64_t>(at / kUpdatesPerMs);
        batches[used].resize(size);
        for (ProfileUpdate& u : batches[used]) workload_.NextUpdate(batch_now[used], &u);
        at += size;
      }
      generate_s += generate.Seconds();

      Stopwatch apply;
      for (size_t b = 0; b < used; ++b) {
        if (batch_now[b] != clock_.NowMs()) {
          clock_.Set(batch_now[b]);
          engine_.Tick();
        }
        const BatchResult result = engine_.Apply(batches[b]);
        if (!result.errors.empty() && errors == 0) Fail("Apply", result.errors[0].message);
        errors += result.errors.size();
        done += batches[b].size();
      }
      apply_s += apply.Seconds();
      if (done >= next_report || done == total) {
        std::fprintf(stderr, "ingest: %llu/%llu updates, %.0f updates/s\n",
                     static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                     static_cast<double>(done) / apply_s);
        next_report += total / 10;
      }
    }
    const uint64_t changes = engine_.Stats().changes_emitted - changes_before;
    figures_.push_back({"ingest", total / apply_s, "updates/s", 2'000'000.0, true});
    figures_.push_back({"ingest changes", changes / apply_s, "changes/s"});
    figures_.push_back({"ingest errors", static_cast<double>(errors), "updates"});
    figures_.push_back({"update generation", total / generate_s, "updates/s"});
  }

  void Backfill() {
    const SegmentSpec spec{"backfill_se_buyers",
                           R"(count(purchase within 30d) >= 2 and country = "SE")",
                           "Swedish repeat buyers (backfill benchmark)"};
    const uint64_t profiles = engine_.Stats().profiles;
    Stopwatch put;
    const auto result = engine_.PutSegment(spec, /*dry_run=*/false);
    const double s = put.Seconds();
    if (!result.ok()) return Fail("PutSegment backfill", result.status().ToString());
    std::fprintf(stderr, "backfill: %llu members of %llu profiles\n",
                 static_cast<unsigned long long>(result->entered),
                 static_cast<unsigned long long>(profiles));
    figures_.push_back({"backfill", s, "s", 0.25 * profiles / 1e6, false});
  }

  void Funnel() {
    const std::vector<std::string> steps = {"page_view", "add_to_cart", "purchase"};
    const uint64_t events = engine_.Stats().events;
    Stopwatch run;
    const auto result = engine_.Funnel(steps, 0);
    const double s = run.Seconds();
    if (!result.ok()) return Fail("Funnel", result.status().ToString());
    std::fprintf(stderr, "funnel: %s of %llu profiles\n",
                 absl::StrJoin(result->counts, " > ").c_str(),
                 static_cast<unsigned long long>(result->total));
    figures_.push_back({"funnel", s, "s", 0.1 * events / 20e6, false});
    figures_.push_back({"funnel scan", result->events_scanned / s, "events/s"});
  }

  std::set<std::string> phases_;
  Workload workload_;
  ManualClock clock_;
  Engine engine_;
  std::vector<Figure> figures_;
  bool ok_ = true;
};

int Main() {
  std::set<std::string> phases;
  const std::vector<std::string> only =
      absl::StrSplit(absl::GetFlag(FLAGS_only), ',', absl::SkipEmpty());
  for (const std::string& p : only) {
    if (std::find(kPhases.begin(), kPhases.end(), p) == kPhases.end()) {
      std::fprintf(stderr, "--only: unknown phase '%s' (phases: %s)\n", p.c_str(),
                   absl::StrJoin(kPhases, ",").c_str());
      return 2;
    }
    phases.emplace(p);
  }
  WorkloadOptions options;
  options.profiles = absl::GetFlag(FLAGS_profiles);
  options.seed = absl::GetFlag(FLAGS_seed);
  const std::string skew = absl::GetFlag(FLAGS_skew);
  if (skew == "zipf") {
    options.skew = KeySkew::kZipf;
  } else if (skew != "uniform") {
    std::fprintf(stderr, "--skew: expected uniform or zipf, got '%s'\n", skew.c_str());
    return 2;
  }
  if (options.profiles == 0) {
    std::fprintf(stderr, "--profiles: must be at least 1\n");
    return 2;
  }

  Bench bench(options, std::move(phases));
  const bool ok = bench.Run();
  PrintTable(bench.figures());
  const std::string json = absl::GetFlag(FLAGS_json);
  if (!json.empty() && !WriteJson(json, bench.figures())) {
    std::fprintf(stderr, "--json: cannot write %s\n", json.c_str());
    return 1;
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace segd

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return segd::Main();
}
