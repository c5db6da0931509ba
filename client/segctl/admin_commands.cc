// segctl route, stats, time get|set: where keys live, how the shards are doing, and the
// cluster's clock.
#include <algorithm>
#include <cstdio>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/segctl/command.h"
#include "client/segctl/output.h"
#include "client/segctl/segctl.pb.h"

namespace segd::segctl {
namespace {

int Route(Context& c) {
  const client::Ring& ring = c.cluster().ring();
  if (c.json()) {
    for (const std::string& key : c.positional()) {
      json::Route route;
      route.set_key(key);
      route.set_shard(static_cast<uint32_t>(ring.ShardOf(key)));
      route.set_address(ring.ServerOf(key));
      PrintJson(route);
    }
    return kExitOk;
  }
  Table table({"KEY", "SHARD", "ADDRESS"}, {1});
  for (const std::string& key : c.positional()) {
    table.Add({key, absl::StrCat(ring.ShardOf(key)), ring.ServerOf(key)});
  }
  table.Print();
  return kExitOk;
}

// Every shard's Stats, asked in parallel and one by one, so that a shard that is down
// shows as such while the others report.
json::ClusterStats GatherStats(const Context& c) {
  std::vector<std::future<absl::StatusOr<v1::Stats>>> replies;
  for (const std::string& server : c.servers()) {
    replies.push_back(std::async(std::launch::async, [&c, server]() -> absl::StatusOr<v1::Stats> {
      absl::StatusOr<std::unique_ptr<client::ClusterClient>> one = c.ClientOf(server);
      if (!one.ok()) return one.status();
      absl::StatusOr<client::ClusterStats> stats = (*one)->GetStats();
      if (!stats.ok()) return stats.status();
      return stats->shards[0];
    }));
  }
  json::ClusterStats out;
  std::vector<v1::Stats> up;  // of the shards that answered
  for (size_t s = 0; s < replies.size(); ++s) {
    json::ShardStats* shard = out.add_shards();
    shard->set_address(c.servers()[s]);
    absl::StatusOr<v1::Stats> r = replies[s].get();
    if (!r.ok()) {
      shard->set_error(r.status().ToString());
      continue;
    }
    *shard->mutable_stats() = *r;
    up.push_back(*std::move(r));
  }
  *out.mutable_total() = client::SumShardStats(up);
  return out;
}

int Stats(Context& c) {
  const json::ClusterStats stats = GatherStats(c);
  int down = 0;
  for (const json::ShardStats& s : stats.shards()) down += s.has_stats() ? 0 : 1;
  if (c.json()) {
    PrintJson(stats);
  } else {
    Table table({"SHARD", "PROFILES", "EVENTS", "SEGMENTS", "UPDATES", "CHANGES", "MEMORY", "CPU",
                 "NOW", "INCARNATION"},
                {1, 2, 3, 4, 5, 6, 7});
    auto row = [](const std::string& name, const v1::Stats& s, const std::string& incarnation) {
      return std::vector<std::string>{name,
                                      FormatCount(s.profiles()),
                                      FormatCount(s.events()),
                                      absl::StrCat(s.segments()),
                                      FormatCount(s.updates_applied()),
                                      FormatCount(s.changes_emitted()),
                                      FormatBytes(s.memory_bytes()),
                                      absl::StrFormat("%.1f s", s.cpu_seconds()),
                                      FormatTime(s.now()),
                                      incarnation};
    };
    for (const json::ShardStats& s : stats.shards()) {
      if (s.has_stats()) {
        table.Add(row(s.address(), s.stats(), absl::StrCat(s.stats().incarnation())));
      } else {
        table.Add({s.address(), "-", "-", "-", "-", "-", "-", "-", "-", "-"});
      }
    }
    if (stats.shards_size() > 1 && down < stats.shards_size()) {
      table.Add(row("total", stats.total(), ""));
    }
    table.Print();
  }
  for (const json::ShardStats& s : stats.shards()) {
    if (!s.has_stats())
      std::fprintf(stderr, "segctl: %s: %s\n", s.address().c_str(), s.error().c_str());
  }
  if (down == 0) return kExitOk;
  return down == stats.shards_size() ? kExitUnreachable : kExitFailed;
}

int TimeGet(Context& c) {
  absl::StatusOr<client::ClusterStats> stats = c.cluster().GetStats();
  if (!stats.ok()) return c.Fail(stats.status());
  if (c.json()) {
    v1::SetTimeResponse now;
    now.set_now(stats->total.now());
    PrintJson(now);
    return kExitOk;
  }
  Table table({"SHARD", "NOW", "MS"}, {2});
  for (size_t s = 0; s < stats->shards.size(); ++s) {
    const int64_t now = stats->shards[s].now();
    table.Add({c.servers()[s], FormatTime(now), absl::StrCat(now)});
  }
  table.Print();
  return kExitOk;
}

// TIME as milliseconds since the epoch: an integer, an RFC 3339 time, or +DURATION after
// the cluster's current time.
absl::StatusOr<int64_t> ParseTime(Context& c, const std::string& text) {
  int64_t ms = 0;
  if (absl::SimpleAtoi(text, &ms)) return ms;
  if (!text.empty() && text[0] == '+') {
    absl::StatusOr<int64_t> delta = ParseDurationMs(std::string_view(text).substr(1));
    if (!delta.ok()) return delta.status();
    absl::StatusOr<client::ClusterStats> stats = c.cluster().GetStats();
    if (!stats.ok()) return stats.status();
    return stats->total.now() + *delta;
  }
  absl::Time t;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &error)) return absl::ToUnixMillis(t);
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text,
                   "\" is not a time: expected milliseconds since the epoch, an RFC 3339 time "
                   "(2023-11-14T22:13:20Z) or +DURATION (+1h)"));
}

int TimeSet(Context& c) {
  absl::StatusOr<int64_t> now = ParseTime(c, c.positional()[0]);
  if (!now.ok()) {
    return now.status().code() == absl::StatusCode::kInvalidArgument
               ? c.Usage(std::string(now.status().message()))
               : c.Fail(now.status());
  }
  v1::SetTimeRequest request;
  request.set_now(*now);
  absl::StatusOr<v1::SetTimeResponse> response = c.cluster().SetTime(request);
  if (!response.ok()) return c.Fail(response.status());
  if (c.json()) {
    PrintJson(*response);
  } else {
    std::printf("cluster time is %s (%lld)\n", FormatTime(response->now()).c_str(),
                static_cast<long long>(response->now()));
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> AdminCommands() {
  return {
      {{"route"},
       "KEY...",
       "show the shard each key lives on (the ketama ring of --servers)",
       "Computed locally, as every client of the cluster computes it; no shard is asked.\n",
       {},
       1,
       Command::kAnyNumber,
       true,
       Route},
      {{"stats"},
       "",
       "show each shard's profiles, events, segments, counters, memory, clock",
       "Every shard is asked on its own: one that cannot be reached shows as \"-\" and is\n"
       "named on stderr (exit 1; exit 3 if none answered). INCARNATION changes when a shard\n"
       "restarts: cursors of an earlier incarnation are out of range.\n",
       {},
       0,
       0,
       true,
       Stats},
      {{"time", "get"}, "", "show each shard's clock", "", {}, 0, 0, true, TimeGet},
      {{"time", "set"},
       "TIME",
       "set the clock of every shard (shards started with --clock=manual)",
       "TIME is milliseconds since the epoch, an RFC 3339 time (2023-11-14T22:13:20Z), or\n"
       "+DURATION after the cluster's current time (+1h). Time-driven membership changes up\n"
       "to TIME are applied before it returns. FAILED_PRECONDITION (exit 1) on a shard with\n"
       "the system clock, or when TIME is before a shard's current time.\n",
       {},
       1,
       1,
       true,
       TimeSet},
  };
}

}  // namespace segd::segctl
