// segctl demo-traffic: a trickle of the standard workload (shared/BENCHMARK.md) into a
// cluster, for the demo of scripts/run.sh: the 20 standard segments, a few thousand
// preloaded profiles, and a few hundred updates a second of the standard update mix.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/segctl/command.h"
#include "client/segctl/output.h"
#include "client/segctl/progress.h"
#include "loadgen/workload.h"
#include "server/convert.h"

namespace segd::segctl {
namespace {

// How often updates are sent: the rate is spread over ticks of this length.
constexpr absl::Duration kTick = absl::Milliseconds(100);
// Without a terminal, a status line this often.
constexpr absl::Duration kReportEvery = absl::Seconds(10);

absl::Status PutStandardSegments(client::ClusterClient& cluster) {
  for (const SegmentSpec& spec : Workload::StandardSegments()) {
    v1::PutSegmentRequest request;
    request.mutable_segment()->set_id(spec.id);
    request.mutable_segment()->set_rule(spec.rule);
    request.mutable_segment()->set_description(spec.description);
    absl::StatusOr<v1::PutSegmentResponse> put = cluster.PutSegment(request);
    if (!put.ok()) return put.status();
  }
  return absl::OkStatus();
}

// Profiles u0 … u{n-1}, their histories ending at `now_ms`, replayed quietly.
absl::StatusOr<client::ReplayResult> Preload(client::ClusterClient& cluster,
                                             const Workload& workload, uint64_t profiles,
                                             int64_t now_ms, bool show_progress) {
  client::ReplayOptions options;
  options.quiet = true;
  absl::StatusOr<std::unique_ptr<client::Replayer>> replayer = cluster.NewReplayer(options);
  if (!replayer.ok()) return replayer.status();
  Progress progress(show_progress, "preloaded", "profiles");
  progress.SetTotal(profiles);
  for (uint64_t n = 0; n < profiles; ++n) {
    v1::Profile profile;
    server::ToProto(workload.MakeProfile(n, now_ms), &profile);
    profile.clear_segments();
    if (absl::Status added = (*replayer)->Add(std::move(profile)); !added.ok()) break;
    if ((n & 255) == 0) progress.Update(n);
  }
  progress.Clear();
  return (*replayer)->Finish();
}

int DemoTraffic(Context& c) {
  absl::StatusOr<uint64_t> profiles = c.PositiveFlag("profiles", 5000);
  absl::StatusOr<uint64_t> rate = c.PositiveFlag("rate", 200);
  absl::StatusOr<uint64_t> seed = c.PositiveFlag("seed", 1);
  absl::StatusOr<uint64_t> batch_size = c.PositiveFlag("batch", 50);
  for (const auto* s : {&profiles, &rate, &seed, &batch_size}) {
    if (!s->ok()) return c.Usage(std::string(s->status().message()));
  }
  absl::Duration duration = absl::InfiniteDuration();
  if (std::optional<std::string> d = c.args().Get("duration")) {
    absl::StatusOr<int64_t> ms = ParseDurationMs(*d);
    if (!ms.ok()) return c.Usage(absl::StrCat("--duration: ", ms.status().message()));
    duration = absl::Milliseconds(*ms);
  }
  InstallStopHandler();

  WorkloadOptions options;
  options.profiles = *profiles;
  options.seed = *seed;
  Workload workload(options);
  client::ClusterClient& cluster = c.cluster();

  if (!c.args().Has("no-segments")) {
    if (absl::Status put = PutStandardSegments(cluster); !put.ok()) return c.Fail(put);
    std::printf("demo-traffic: the 20 standard segments are defined\n");
  }
  // The cluster's time, which runs as the wall clock does (or stands still, on a manual
  // clock: events then run ahead of it, up to the servers' --max-future).
  absl::StatusOr<client::ClusterStats> stats = cluster.GetStats();
  if (!stats.ok()) return c.Fail(stats.status());
  const int64_t cluster_start_ms = stats->total.now();
  const absl::Time start = absl::Now();
  auto now_ms = [&] { return cluster_start_ms + absl::ToInt64Milliseconds(absl::Now() - start); };

  if (!c.args().Has("no-preload")) {
    absl::StatusOr<client::ReplayResult> preloaded =
        Preload(cluster, workload, *profiles, now_ms(), c.progress());
    if (!preloaded.ok()) return c.Fail(preloaded.status());
    std::printf("demo-traffic: preloaded %s profiles (%s events)\n",
                FormatCount(preloaded->profiles).c_str(), FormatCount(preloaded->events).c_str());
    if (!preloaded->errors.empty()) {
      return c.Fail(absl::FailedPreconditionError(
          absl::StrCat(preloaded->errors.size(), " profiles were rejected, the first (",
                       preloaded->errors[0].key, ") with: ", preloaded->errors[0].message)));
    }
  }
  std::printf("demo-traffic: sending %s updates/s over %s profiles (Ctrl-C stops)\n",
              FormatCount(*rate).c_str(), FormatCount(*profiles).c_str());
  std::fflush(stdout);

  std::unique_ptr<client::Producer> producer = cluster.NewProducer();
  std::deque<std::future<absl::StatusOr<v1::Ack>>> pending;
  uint64_t sent = 0, applied = 0, rejected = 0, failed_batches = 0, seq = 0;
  std::string last_failure;
  auto reap = [&](bool wait) {
    while (!pending.empty() && (wait || pending.front().wait_for(std::chrono::seconds(0)) ==
                                            std::future_status::ready)) {
      absl::StatusOr<v1::Ack> ack = pending.front().get();
      pending.pop_front();
      if (ack.ok()) {
        applied += ack->applied();
        rejected += static_cast<uint64_t>(ack->errors_size());
      } else {
        ++failed_batches;
        last_failure = ack.status().ToString();
      }
    }
  };

  const absl::Time traffic_start = absl::Now();
  const absl::Time until = traffic_start + duration;
  absl::Time next_tick = traffic_start;
  absl::Time next_report = traffic_start + kReportEvery;
  double owed = 0;  // updates due but not yet sent (fractions carry over)
  ProfileUpdate update;
  Progress progress(c.progress(), "sent", "updates");
  while (!StopRequested() && absl::Now() < until) {
    absl::SleepFor(next_tick - absl::Now());
    next_tick += kTick;
    owed += static_cast<double>(*rate) * absl::ToDoubleSeconds(kTick);
    const int64_t tick_ms = now_ms();
    while (owed >= 1) {
      v1::UpdateBatch batch;
      batch.set_seq(++seq);
      for (uint64_t i = 0; i < *batch_size && owed >= 1; ++i, owed -= 1) {
        workload.NextUpdate(tick_ms, &update);
        server::ToProto(update, batch.add_updates());
      }
      sent += static_cast<uint64_t>(batch.updates_size());
      pending.push_back(producer->Send(std::move(batch)));
    }
    reap(false);
    progress.Update(sent);
    if (!c.progress() && absl::Now() >= next_report) {
      next_report += kReportEvery;
      std::printf("demo-traffic: %s updates sent, %s applied, %s rejected, %s batches failed%s\n",
                  FormatCount(sent).c_str(), FormatCount(applied).c_str(),
                  FormatCount(rejected).c_str(), FormatCount(failed_batches).c_str(),
                  last_failure.empty() ? "" : absl::StrCat(" (last: ", last_failure, ")").c_str());
      std::fflush(stdout);
      last_failure.clear();
    }
  }
  progress.Clear();
  reap(true);
  producer->Close().IgnoreError();  // failed batches were counted
  std::printf(
      "demo-traffic: stopped after %s: %s updates sent, %s applied, %s rejected, %s "
      "batches failed\n",
      absl::FormatDuration(absl::Trunc(absl::Now() - traffic_start, absl::Seconds(1))).c_str(),
      FormatCount(sent).c_str(), FormatCount(applied).c_str(), FormatCount(rejected).c_str(),
      FormatCount(failed_batches).c_str());
  return kExitOk;
}

}  // namespace

std::vector<Command> DemoCommands() {
  return {
      {{"demo-traffic"},
       "",
       "feed a cluster a trickle of the standard workload, for demos",
       "Puts the 20 standard segments of shared/BENCHMARK.md, preloads profiles u0 ... u{N-1}\n"
       "(attributes and 20 events of history each, replayed quietly), then sends the standard\n"
       "update mix (page views, carts, purchases, logins, email clicks; times = now) at\n"
       "--rate updates/s until interrupted. What scripts/run.sh runs against its cluster.\n",
       {{"profiles", "N", "profiles u0 ... u{N-1} (default 5000)"},
        {"rate", "N", "updates per second (default 200)"},
        {"batch", "N", "updates per batch at most (default 50)"},
        {"seed", "N", "workload seed (default 1)"},
        {"duration", "DURATION", "stop after this long (default: until Ctrl-C)"},
        {"no-segments", "", "do not put the standard segments"},
        {"no-preload", "", "do not preload the profiles"}},
       0,
       0,
       true,
       DemoTraffic},
  };
}

}  // namespace segd::segctl
