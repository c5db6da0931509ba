#include "loadgen/bench.h"

#include <algorithm>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/cpu_time.h"
#include "core/text.h"
#include "loadgen/change_subscriber.h"
#include "loadgen/preloader.h"
#include "loadgen/redis_driver.h"
#include "loadgen/send_times.h"
#include "loadgen/update_stream.h"
#include "loadgen/window.h"

namespace segd::load {
namespace {

// The backfill segment (as segd-engine-bench's): a new rule over every history.
const SegmentSpec& BackfillSegment() {
  static const SegmentSpec* const spec =
      new SegmentSpec{"segload_backfill", R"(count(purchase within 30d) >= 2 and country = "SE")",
                      "Swedish repeat buyers (segload's backfill benchmark)"};
  return *spec;
}

const std::vector<std::string>& FunnelSteps() {
  static const std::vector<std::string>* const steps =
      new std::vector<std::string>{"page_view", "add_to_cart", "purchase"};
  return *steps;
}

// How long a subscriber may take to be in place before the run starts regardless.
constexpr absl::Duration kSubscribeTimeout = absl::Seconds(3);
// The probe of the maximum rate, when the latency phase needs one.
constexpr double kProbeWarmupS = 1;
constexpr double kProbeDurationS = 4;

void SleepUntil(int64_t t_ns) {
  const int64_t now = MonoNs();
  if (t_ns > now) absl::SleepFor(absl::Nanoseconds(t_ns - now));
}

double Seconds(int64_t from_ns, int64_t to_ns) {
  return static_cast<double>(to_ns - from_ns) / 1e9;
}

// CPU time used so far by the servers and by segload (every thread), in seconds.
struct CpuMark {
  double segd_s = 0;
  double segload_s = 0;
};

CpuMark MarkCpu(const v1::Stats& servers) { return {servers.cpu_seconds(), ProcessCpuSeconds()}; }

// The CPU spent between two marks per unit of `units` done between them.
CpuCost CostPer(const CpuMark& from, const CpuMark& to, uint64_t units) {
  if (units == 0) return {};
  const double n = static_cast<double>(units);
  return {(to.segd_s - from.segd_s) * 1e6 / n, (to.segload_s - from.segload_s) * 1e6 / n};
}

}  // namespace

Bench::Bench(const BenchOptions& options, const Cluster& cluster, Report& report)
    : options_(options),
      cluster_(cluster),
      report_(report),
      shard_of_(cluster.ShardTable(options.profiles)),
      start_ms_(WallMs()) {}

bool Bench::Selected(std::string_view phase) const { return options_.phases.count(phase) > 0; }

void Bench::Phase(std::string_view phase, const std::string& what) {
  std::fprintf(stderr, "%-8s %s\n", std::string(phase).c_str(), what.c_str());
}

bool Bench::Run() {
  bool ok = true;
  const auto run = [&](std::string_view phase, absl::Status (Bench::*step)()) {
    if (!Selected(phase)) return;
    const absl::Status status = (this->*step)();
    if (!status.ok()) {
      ok = false;
      report_.AddError(absl::StrCat(AsAbsl(phase), ": ", status.message()));
      Phase(phase, absl::StrCat("FAILED: ", status.message()));
    }
  };
  const bool uses_segd = Selected("ingest") || Selected("latency") || Selected("fanout") ||
                         Selected("backfill") || Selected("funnel");
  run("preload", &Bench::Preload);
  if (!ok) return false;  // the servers do not hold what the other phases assume
  if (uses_segd && !Selected("preload")) {
    if (absl::Status s = EnsureSegments(); !s.ok()) {
      report_.AddError(absl::StrCat("segments: ", s.message()));
      return false;
    }
  }
  run("ingest", &Bench::Ingest);
  run("latency", &Bench::Latency);
  run("fanout", &Bench::Fanout);
  run("backfill", &Bench::Backfill);
  run("funnel", &Bench::Funnel);
  run("redis", &Bench::Redis);

  // Where every server stands at the end.
  if (absl::StatusOr<std::vector<v1::Stats>> stats = cluster_.Stats(); stats.ok()) {
    for (int s = 0; s < cluster_.size(); ++s) {
      const v1::Stats& st = (*stats)[s];
      report_.AddServer(absl::StrFormat(
          "{\"address\": %s, \"profiles\": %d, \"events\": %d, \"segments\": %d, "
          "\"memory_bytes\": %d, \"updates_applied\": %d, \"changes_emitted\": %d}",
          JsonString(cluster_.servers()[s]), st.profiles(), st.events(), st.segments(),
          st.memory_bytes(), st.updates_applied(), st.changes_emitted()));
    }
  }
  return ok;
}

// ---- preload ----

absl::Status Bench::Preload() {
  absl::StatusOr<v1::Stats> before = cluster_.TotalStats();
  if (!before.ok()) return before.status();
  const CpuMark cpu_before = MarkCpu(*before);
  Phase("preload", absl::StrFormat("replaying %s profiles into %d server(s), %d calls each",
                                   HumanNumber(static_cast<double>(options_.profiles)),
                                   cluster_.size(), options_.replay_calls));
  PreloadOptions po;
  po.profiles = options_.profiles;
  po.seed = options_.seed;
  po.now_ms = start_ms_;
  po.profiles_per_message = options_.replay_batch;
  po.calls_per_server = options_.replay_calls;
  po.build_threads = options_.build_threads;
  po.buffer_bytes = options_.preload_buffer_bytes;
  Preloader preloader(cluster_, shard_of_, po);
  absl::StatusOr<PreloadResult> result;
  {
    Probe probe;
    probe.sent_label = "built";
    probe.acked_label = "replayed";
    probe.unit = "profiles";
    probe.sent = [&] { return preloader.built_profiles(); };
    probe.acked = [&] { return preloader.sent_profiles(); };
    Monitor monitor("preload", probe, options_.progress, nullptr);
    result = preloader.Run();
  }
  if (!result.ok()) return result.status();
  report_.Set("profiles", static_cast<double>(result->profiles));
  report_.Set("replay_s", result->seconds);
  report_.Set("replay_profiles_per_s", static_cast<double>(result->profiles) / result->seconds);
  report_.Set("replay_events_per_s", static_cast<double>(result->events) / result->seconds);
  report_.Set("replay_errors", static_cast<double>(result->errors));
  report_.Set("preload_built_ahead", result->built_ahead);
  report_.Set("preload_build_cpu_s", result->build_cpu_s);
  if (result->built_ahead < 1) {
    report_.AddWarning(absl::StrFormat(
        "preload: %.0f %% of the profiles were built before the clock, the rest during the "
        "replay on the same cores, so the replay rate counts segload's building too (a "
        "larger --preload-buffer-mb builds more ahead)",
        100 * result->built_ahead));
  }
  if (result->errors > 0) {
    report_.AddError(absl::StrCat("preload: ", result->errors, " profiles rejected, e.g. ",
                                  result->first_error));
  }

  absl::StatusOr<v1::Stats> after = cluster_.TotalStats();
  if (!after.ok()) return after.status();
  // segload's CPU without building the profiles (preload_build_cpu_s): what sending them
  // costs, as a client replaying stored profiles would spend it.
  CpuMark cpu_after = MarkCpu(*after);
  cpu_after.segload_s -= result->build_cpu_s;
  const CpuCost cpu = CostPer(cpu_before, cpu_after, result->profiles);
  report_.Set("replay_segd_cpu_us_per_profile", cpu.segd_us);
  report_.Set("replay_segload_cpu_us_per_profile", cpu.segload_us);
  // Per profile: the growth of RSS when the servers started empty, else the whole RSS
  // over every profile held (an upper bound: it includes the servers' base).
  const auto per_profile = [&](uint64_t rss) {
    if (before->profiles() == 0 && after->profiles() > 0) {
      return static_cast<double>(rss - std::min(rss, before->memory_bytes())) /
             static_cast<double>(after->profiles());
    }
    return after->profiles() == 0
               ? 0.0
               : static_cast<double>(rss) / static_cast<double>(after->profiles());
  };
  report_.Set("rss_before_preload_bytes", static_cast<double>(before->memory_bytes()));
  report_.Set("rss_bytes", static_cast<double>(after->memory_bytes()));
  report_.Set("bytes_per_profile", per_profile(after->memory_bytes()));
  Phase("preload", absl::StrFormat("%s profiles/s, %s B per profile, segd CPU %.2f µs per profile",
                                   HumanNumber(*report_.Get("replay_profiles_per_s")),
                                   HumanNumber(*report_.Get("bytes_per_profile")), cpu.segd_us));

  const std::vector<SegmentSpec> segments = Workload::StandardSegments();
  const int64_t put_start = MonoNs();
  for (const SegmentSpec& spec : segments) {
    absl::StatusOr<std::vector<v1::PutSegmentResponse>> put = cluster_.PutSegment(spec);
    if (!put.ok()) return put.status();
  }
  report_.Set("segments_put_s", Seconds(put_start, MonoNs()));
  absl::StatusOr<v1::Stats> with_segments = cluster_.TotalStats();
  if (!with_segments.ok()) return with_segments.status();
  report_.Set("rss_with_segments_bytes", static_cast<double>(with_segments->memory_bytes()));
  report_.Set("bytes_per_profile_with_segments", per_profile(with_segments->memory_bytes()));
  Phase("preload",
        absl::StrFormat("20 standard segments put in %.2f s", *report_.Get("segments_put_s")));
  return absl::OkStatus();
}

absl::Status Bench::EnsureSegments() {
  absl::StatusOr<std::vector<std::string>> ids = cluster_.SegmentIds();
  if (!ids.ok()) return ids.status();
  int put = 0;
  for (const SegmentSpec& spec : Workload::StandardSegments()) {
    if (std::binary_search(ids->begin(), ids->end(), spec.id)) continue;
    absl::StatusOr<std::vector<v1::PutSegmentResponse>> r = cluster_.PutSegment(spec);
    if (!r.ok()) return r.status();
    ++put;
  }
  absl::StatusOr<v1::Stats> stats = cluster_.TotalStats();
  if (!stats.ok()) return stats.status();
  Phase("setup",
        absl::StrFormat("%s profiles held, %d standard segments put (%d were there)",
                        HumanNumber(static_cast<double>(stats->profiles())), put, 20 - put));
  if (stats->profiles() < options_.profiles) {
    report_.AddWarning(absl::StrFormat(
        "the servers hold %d profiles, fewer than --profiles=%d: run the preload phase first",
        stats->profiles(), options_.profiles));
  }
  return absl::OkStatus();
}

// ---- ingest runs ----

absl::StatusOr<Bench::IngestRun> Bench::RunIngest(std::string_view phase, double rate,
                                                  double warmup_s, double duration_s,
                                                  int subscribers, bool time_changes) {
  // Everything that takes time to set up comes before the window is fixed: the update
  // stream's pool, the send times, the subscriptions.
  UpdateStreamOptions uo;
  uo.profiles = options_.profiles;
  uo.seed = options_.seed * 1000 + ++runs_;  // each run its own stream
  uo.skew = options_.skew;
  uo.batch = options_.batch;
  auto updates = std::make_unique<UpdateStream>(uo, shard_of_, cluster_.size());
  std::unique_ptr<SendTimes> send_times;
  if (time_changes) send_times = std::make_unique<SendTimes>(options_.profiles);
  std::vector<std::unique_ptr<ChangeSubscriber>> subs;
  for (int i = 0; i < subscribers; ++i) {
    for (int s = 0; s < cluster_.size(); ++s) {
      subs.push_back(std::make_unique<ChangeSubscriber>(cluster_.NewChannel(s),
                                                        cluster_.servers()[s], send_times.get()));
    }
  }
  for (auto& sub : subs) sub->AwaitFirstBatch(kSubscribeTimeout);

  const Window window = Window::After(warmup_s, duration_s);
  for (auto& sub : subs) sub->SetWindow(window);
  IngestOptions io;
  io.streams_per_server = options_.streams;
  io.in_flight = options_.in_flight;
  io.rate = rate;
  io.window = window;
  IngestDriver driver(cluster_, std::move(updates), io, send_times.get());

  IngestRun run;
  absl::Status driver_status;
  absl::StatusOr<v1::Stats> stats_start, stats_end;
  int64_t stats_start_ns = 0, stats_end_ns = 0;
  CpuMark cpu_start, cpu_end;
  {
    Probe probe;
    probe.sent = [&] { return driver.counters().sent_updates; };
    probe.acked = [&] { return driver.counters().acked_updates; };
    probe.rejected = [&] { return driver.counters().rejected_updates; };
    probe.in_flight = [&] { return driver.counters().in_flight_batches; };
    probe.ack.push_back(&driver.interval_ack_latency());
    if (!subs.empty()) {
      probe.changes = [&] {
        uint64_t n = 0;
        for (const auto& sub : subs) n += sub->changes();
        return n;
      };
    }
    if (time_changes) {
      for (auto& sub : subs) probe.latency.push_back(&sub->interval_latency());
    }
    Monitor monitor(std::string(phase), probe, options_.progress, options_.series);
    std::thread sender([&] { driver_status = driver.Run(); });
    // The servers' own count of changes emitted, at the window's edges.
    SleepUntil(window.start_ns);
    stats_start = cluster_.TotalStats();
    stats_start_ns = MonoNs();
    if (stats_start.ok()) cpu_start = MarkCpu(*stats_start);
    SleepUntil(window.end_ns);
    stats_end = cluster_.TotalStats();
    stats_end_ns = MonoNs();
    if (stats_end.ok()) cpu_end = MarkCpu(*stats_end);
    sender.join();
  }
  for (auto& sub : subs) {
    if (absl::Status s = sub->Stop(); !s.ok()) {
      ++run.subscribers_dropped;
      report_.AddError(absl::StrCat(AsAbsl(phase), ": subscriber: ", s.message()));
    }
  }
  if (!driver_status.ok()) return driver_status;
  run.ingest = driver.result();
  run.ack = SummarizeNs(driver.ack_latency());
  Histogram latency;
  for (const auto& sub : subs) {
    latency.Add(sub->latency());
    run.changes += sub->window_changes();
    run.change_batches += sub->window_batches();
  }
  run.latency = SummarizeNs(latency);
  if (stats_start.ok() && stats_end.ok() && stats_end_ns > stats_start_ns) {
    run.server_changes_per_s =
        static_cast<double>(stats_end->changes_emitted() - stats_start->changes_emitted()) /
        Seconds(stats_start_ns, stats_end_ns);
    run.cpu =
        CostPer(cpu_start, cpu_end, stats_end->updates_applied() - stats_start->updates_applied());
  }
  if (run.ingest.rejected_updates > 0) {
    report_.AddError(absl::StrCat(AsAbsl(phase), ": ", run.ingest.rejected_updates,
                                  " updates rejected, e.g. ", run.ingest.first_rejection));
  }
  if (run.ingest.acked_updates == 0) {
    return absl::UnavailableError("no update was acked inside the measured window");
  }
  return run;
}

absl::Status Bench::Ingest() {
  Phase("ingest",
        absl::StrFormat("%s for %g s after %g s of warm-up, %d stream(s) per server, "
                        "%d updates per batch, %d batches in flight per stream",
                        options_.rate > 0 ? absl::StrCat(HumanNumber(options_.rate), " updates/s")
                                          : std::string("as fast as acks come"),
                        options_.duration_s, options_.warmup_s, options_.streams, options_.batch,
                        options_.in_flight));
  absl::StatusOr<IngestRun> run =
      RunIngest("ingest", options_.rate, options_.warmup_s, options_.duration_s, 0, false);
  if (!run.ok()) return run.status();
  if (options_.rate > 0) {
    report_.Set("ingest_rate_target", options_.rate);
  } else {
    max_rate_ = run->ingest.updates_per_s;
  }
  report_.Set("ingest_updates_per_s", run->ingest.updates_per_s);
  report_.Set("ingest_sent_updates_per_s", run->ingest.sent_per_s);
  report_.Set("ingest_changes_per_s", run->server_changes_per_s);
  report_.Set("ingest_rejected", static_cast<double>(run->ingest.rejected_updates));
  report_.Set("ingest_ack_p50_ms", run->ack.p50_ms);
  report_.Set("ingest_ack_p90_ms", run->ack.p90_ms);
  report_.Set("ingest_ack_p99_ms", run->ack.p99_ms);
  report_.Set("ingest_ack_p999_ms", run->ack.p999_ms);
  report_.Set("ingest_ack_max_ms", run->ack.max_ms);
  report_.Set("ingest_segd_cpu_us_per_update", run->cpu.segd_us);
  report_.Set("ingest_segload_cpu_us_per_update", run->cpu.segload_us);
  Phase("ingest", absl::StrFormat("%s updates/s, ack p50 %.1f ms, p99 %.1f ms, segd CPU %.2f µs "
                                  "per update",
                                  HumanNumber(run->ingest.updates_per_s), run->ack.p50_ms,
                                  run->ack.p99_ms, run->cpu.segd_us));
  if (options_.rate > 0 && run->ingest.updates_per_s < 0.95 * options_.rate) {
    report_.AddWarning(absl::StrFormat("ingest: the target rate %s updates/s was not sustained",
                                       HumanNumber(options_.rate)));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> Bench::MaxRate() {
  if (max_rate_ > 0) return max_rate_;
  Phase("latency", absl::StrFormat("probing the maximum rate for %g s", kProbeDurationS));
  absl::StatusOr<IngestRun> probe = RunIngest("probe", 0, kProbeWarmupS, kProbeDurationS, 0, false);
  if (!probe.ok()) return probe.status();
  max_rate_ = probe->ingest.updates_per_s;
  return max_rate_;
}

absl::Status Bench::Latency() {
  double rate = options_.rate;
  if (rate <= 0) {
    absl::StatusOr<double> max = MaxRate();
    if (!max.ok()) return max.status();
    rate = *max / 2;
  }
  Phase("latency", absl::StrFormat("%s updates/s (open loop) for %g s after %g s of warm-up, "
                                   "one subscriber per server",
                                   HumanNumber(rate), options_.duration_s, options_.warmup_s));
  absl::StatusOr<IngestRun> run =
      RunIngest("latency", rate, options_.warmup_s, options_.duration_s, 1, true);
  if (!run.ok()) return run.status();
  report_.Set("latency_rate_target", rate);
  report_.Set("latency_ingest_updates_per_s", run->ingest.updates_per_s);
  report_.Set("latency_changes_per_s", static_cast<double>(run->changes) / run->ingest.seconds);
  report_.Set("latency_samples", static_cast<double>(run->latency.count));
  report_.Set("latency_p50_ms", run->latency.p50_ms);
  report_.Set("latency_p90_ms", run->latency.p90_ms);
  report_.Set("latency_p99_ms", run->latency.p99_ms);
  report_.Set("latency_p999_ms", run->latency.p999_ms);
  report_.Set("latency_max_ms", run->latency.max_ms);
  report_.Set("latency_ack_p50_ms", run->ack.p50_ms);
  report_.Set("latency_ack_p99_ms", run->ack.p99_ms);
  report_.Set("latency_ack_p999_ms", run->ack.p999_ms);
  report_.Set("latency_segd_cpu_us_per_update", run->cpu.segd_us);
  report_.Set("latency_segload_cpu_us_per_update", run->cpu.segload_us);
  Phase("latency", absl::StrFormat("update-to-change p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms "
                                   "(%s changes timed)",
                                   run->latency.p50_ms, run->latency.p99_ms, run->latency.p999_ms,
                                   HumanNumber(static_cast<double>(run->latency.count))));
  if (run->latency.count == 0) {
    return absl::UnavailableError("no change of an update arrived inside the window");
  }
  if (run->ingest.updates_per_s < 0.95 * rate) {
    report_.AddWarning(absl::StrFormat("latency: the rate %s updates/s was not sustained (%s)",
                                       HumanNumber(rate), HumanNumber(run->ingest.updates_per_s)));
  }
  return absl::OkStatus();
}

absl::Status Bench::Fanout() {
  // The rate falls as histories grow (every update adds an event), so a baseline taken
  // earlier in the run (the ingest phase) would be charged to the subscribers. The
  // baseline is measured on either side of the run with subscribers instead, and their
  // mean taken: drift that is linear in time cancels.
  const auto baseline_run = [&](std::string_view when) -> absl::StatusOr<IngestRun> {
    Phase("fanout", absl::StrFormat("baseline %s: the maximum rate without subscribers, %g s",
                                    AsAbsl(when), options_.duration_s));
    return RunIngest("fanout-0", 0, options_.warmup_s, options_.duration_s, 0, false);
  };
  absl::StatusOr<IngestRun> before_run = baseline_run("before");
  if (!before_run.ok()) return before_run.status();
  const double before = before_run->ingest.updates_per_s;
  if (max_rate_ <= 0) max_rate_ = before;  // for the Redis ratio when ingest did not run
  Phase("fanout", absl::StrFormat("the maximum rate with %d subscribers (all segments) per server",
                                  options_.subscribers));
  absl::StatusOr<IngestRun> run =
      RunIngest("fanout", 0, options_.warmup_s, options_.duration_s, options_.subscribers, false);
  if (!run.ok()) return run.status();
  absl::StatusOr<IngestRun> after_run = baseline_run("after");
  if (!after_run.ok()) return after_run.status();
  const double after = after_run->ingest.updates_per_s;
  const double baseline = (before + after) / 2;
  const double changes_per_s = static_cast<double>(run->changes) / run->ingest.seconds;
  report_.Set("fanout_subscribers", options_.subscribers);
  report_.Set("fanout_changes_per_s", changes_per_s);
  report_.Set("fanout_changes_per_subscriber_per_s", changes_per_s / options_.subscribers);
  report_.Set("fanout_changes_per_batch",
              run->change_batches > 0
                  ? static_cast<double>(run->changes) / static_cast<double>(run->change_batches)
                  : 0.0);
  report_.Set("fanout_ingest_updates_per_s", run->ingest.updates_per_s);
  report_.Set("fanout_baseline_before_updates_per_s", before);
  report_.Set("fanout_baseline_after_updates_per_s", after);
  report_.Set("fanout_baseline_ingest_updates_per_s", baseline);
  report_.Set("fanout_ingest_ratio", run->ingest.updates_per_s / baseline);
  report_.Set("fanout_subscribers_dropped", run->subscribers_dropped);
  report_.Set("fanout_segd_cpu_us_per_update", run->cpu.segd_us);
  report_.Set("fanout_segload_cpu_us_per_update", run->cpu.segload_us);
  report_.Set("fanout_baseline_segd_cpu_us_per_update",
              (before_run->cpu.segd_us + after_run->cpu.segd_us) / 2);
  report_.Set("fanout_baseline_segload_cpu_us_per_update",
              (before_run->cpu.segload_us + after_run->cpu.segload_us) / 2);
  Phase("fanout",
        absl::StrFormat("%s changes/s delivered, ingest %s updates/s (%.2f of %s, the mean of "
                        "%s before and %s after)",
                        HumanNumber(changes_per_s), HumanNumber(run->ingest.updates_per_s),
                        run->ingest.updates_per_s / baseline, HumanNumber(baseline),
                        HumanNumber(before), HumanNumber(after)));
  return absl::OkStatus();
}

// ---- queries ----

absl::Status Bench::Backfill() {
  const SegmentSpec& spec = BackfillSegment();
  if (absl::Status s = cluster_.DeleteSegment(spec.id); !s.ok()) return s;
  Phase("backfill", absl::StrCat("PutSegment ", spec.id, ": ", spec.rule));
  const int64_t start = MonoNs();
  absl::StatusOr<std::vector<v1::PutSegmentResponse>> put = cluster_.PutSegment(spec);
  const double took = Seconds(start, MonoNs());
  if (!put.ok()) return put.status();
  uint64_t members = 0;
  for (const v1::PutSegmentResponse& r : *put) members += r.entered();
  report_.Set("backfill_s", took);
  report_.Set("backfill_members", static_cast<double>(members));
  Phase("backfill",
        absl::StrFormat("%.3f s, %s members", took, HumanNumber(static_cast<double>(members))));
  // Leave the servers with the standard segments only.
  return cluster_.DeleteSegment(spec.id);
}

absl::Status Bench::Funnel() {
  absl::StatusOr<v1::Stats> stats = cluster_.TotalStats();
  if (!stats.ok()) return stats.status();
  Phase("funnel", absl::StrCat("Funnel ", absl::StrJoin(FunnelSteps(), ", "), " over ",
                               HumanNumber(static_cast<double>(stats->events())), " events"));
  const int64_t start = MonoNs();
  absl::StatusOr<v1::FunnelResponse> funnel = cluster_.Funnel(FunnelSteps(), 0);
  const double took = Seconds(start, MonoNs());
  if (!funnel.ok()) return funnel.status();
  report_.Set("funnel_s", took);
  report_.Set("funnel_events", static_cast<double>(stats->events()));
  report_.Set("funnel_events_per_s", static_cast<double>(stats->events()) / took);
  report_.Set("funnel_viewed", static_cast<double>(funnel->counts(0)));
  report_.Set("funnel_added", static_cast<double>(funnel->counts(1)));
  report_.Set("funnel_purchased", static_cast<double>(funnel->counts(2)));
  Phase("funnel", absl::StrFormat("%.3f s: %d > %d > %d of %d profiles", took, funnel->counts(0),
                                  funnel->counts(1), funnel->counts(2), funnel->total()));
  return absl::OkStatus();
}

// ---- redis ----

absl::Status Bench::Redis() {
  if (options_.redis.empty()) {
    return absl::InvalidArgumentError("the redis phase needs --redis=HOST:PORT");
  }
  RedisOptions ro;
  ro.address = options_.redis;
  ro.profiles = options_.profiles;
  ro.seed = options_.seed;
  ro.skew = options_.skew;
  ro.batch = options_.batch;
  ro.connections = options_.streams;
  ro.in_flight = options_.in_flight;
  ro.now_ms = start_ms_;
  RedisDriver redis(ro);
  absl::StatusOr<RedisMemory> before = redis.Memory();
  if (!before.ok()) return before.status();

  Phase("redis",
        absl::StrFormat("preloading %s profiles into Redis at %s",
                        HumanNumber(static_cast<double>(options_.profiles)), options_.redis));
  absl::StatusOr<RedisPreloadResult> preload;
  {
    Probe probe;
    probe.acked_label = "stored";
    probe.unit = "profiles";
    probe.acked = [&] { return redis.preloaded_profiles(); };
    Monitor monitor("redis", probe, options_.progress, nullptr);
    preload = redis.Preload();
  }
  if (!preload.ok()) return preload.status();
  absl::StatusOr<RedisMemory> after = redis.Memory();
  if (!after.ok()) return after.status();
  report_.Set("redis_preload_profiles_per_s",
              static_cast<double>(preload->profiles) / preload->seconds);
  report_.Set(
      "redis_bytes_per_profile",
      static_cast<double>(after->used_memory - std::min(after->used_memory, before->used_memory)) /
          static_cast<double>(options_.profiles));

  Phase("redis", absl::StrFormat("updates as fast as replies come for %g s after %g s of "
                                 "warm-up, %d connections",
                                 options_.duration_s, options_.warmup_s, ro.connections));
  const Window window = Window::After(options_.warmup_s, options_.duration_s);
  absl::StatusOr<RedisIngestResult> ingest;
  {
    Probe probe;
    probe.sent = [&] { return redis.sent_updates(); };
    probe.acked = [&] { return redis.acked_updates(); };
    probe.ack.push_back(&redis.interval_latency());
    Monitor monitor("redis", probe, options_.progress, options_.series);
    ingest = redis.Ingest(window);
  }
  if (!ingest.ok()) return ingest.status();
  const LatencySummary batch = SummarizeNs(redis.batch_latency());
  absl::StatusOr<RedisMemory> end = redis.Memory();
  if (!end.ok()) return end.status();
  report_.Set("redis_rss_bytes", static_cast<double>(end->used_memory_rss));
  report_.Set("redis_ingest_updates_per_s", ingest->updates_per_s);
  report_.Set("redis_batch_p50_ms", batch.p50_ms);
  report_.Set("redis_batch_p99_ms", batch.p99_ms);
  report_.Set("redis_errors", static_cast<double>(preload->errors + ingest->errors));
  if (preload->errors + ingest->errors > 0) {
    report_.AddError(absl::StrCat("redis: error replies, e.g. ", preload->first_error.empty()
                                                                     ? ingest->first_error
                                                                     : preload->first_error));
  }
  // The ratio compares maxima: segd's as measured by an earlier phase of this run.
  if (max_rate_ > 0 && ingest->updates_per_s > 0) {
    report_.Set("ingest_ratio_to_redis", max_rate_ / ingest->updates_per_s);
  }
  Phase("redis", absl::StrFormat("%s updates/s, batch round trip p50 %.1f ms",
                                 HumanNumber(ingest->updates_per_s), batch.p50_ms));
  return absl::OkStatus();
}

}  // namespace segd::load
