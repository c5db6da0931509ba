// segctl recover: rebuilds a shard that restarted empty (README, "Recovering a shard"):
// its clock from a peer, every segment definition, then the profiles of an export that the
// ring assigns to it.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/segctl/command.h"
#include "client/segctl/line_reader.h"
#include "client/segctl/output.h"
#include "client/segctl/profile_files.h"

namespace segd::segctl {
namespace {

// The segments of a file written by `segctl segment list --json`: one Segment per line.
absl::StatusOr<std::vector<v1::Segment>> ReadSegments(const std::string& path) {
  absl::StatusOr<std::unique_ptr<LineReader>> reader = LineReader::Open(path);
  if (!reader.ok()) return reader.status();
  std::vector<v1::Segment> segments;
  std::string_view line;
  while ((*reader)->Next(&line)) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    v1::Segment segment;
    if (absl::Status parsed = FromJson(line, &segment); !parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat((*reader)->name(), ":", (*reader)->line_number(), ": ", parsed.message()));
    }
    segments.push_back(std::move(segment));
  }
  if (!(*reader)->status().ok()) return (*reader)->status();
  return segments;
}

// Puts every segment on `target`. A rule may refer to segments (in_segment) that are not
// there yet, which fails with INVALID_ARGUMENT; those are put again after the others, in
// rounds, until a round puts nothing more. Other errors end it at once.
absl::Status PutSegments(client::ClusterClient& target, const std::vector<v1::Segment>& segments) {
  std::vector<const v1::Segment*> left;
  for (const v1::Segment& s : segments) left.push_back(&s);
  while (!left.empty()) {
    std::vector<const v1::Segment*> failed;
    std::vector<std::string> errors;
    for (const v1::Segment* segment : left) {
      v1::PutSegmentRequest request;
      request.mutable_segment()->set_id(segment->id());
      request.mutable_segment()->set_rule(segment->rule());
      request.mutable_segment()->set_description(segment->description());
      absl::StatusOr<v1::PutSegmentResponse> put = target.PutSegment(request);
      if (put.ok()) continue;
      if (put.status().code() != absl::StatusCode::kInvalidArgument) return put.status();
      failed.push_back(segment);
      errors.push_back(absl::StrCat(segment->id(), ": ", put.status().message()));
    }
    if (failed.size() == left.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot put ", failed.size(), " segments: ", absl::StrJoin(errors, "; ")));
    }
    left = std::move(failed);
  }
  return absl::OkStatus();
}

// The Stats of one server.
absl::StatusOr<v1::Stats> StatsOf(const Context& c, const std::string& server) {
  absl::StatusOr<std::unique_ptr<client::ClusterClient>> one = c.ClientOf(server);
  if (!one.ok()) return one.status();
  absl::StatusOr<client::ClusterStats> stats = (*one)->GetStats();
  if (!stats.ok()) return stats.status();
  return stats->shards[0];
}

int Recover(Context& c) {
  const std::optional<std::string> shard_flag = c.args().Get("shard");
  const std::optional<std::string> from = c.args().Get("from");
  const std::optional<std::string> from_peer = c.args().Get("from-peer");
  const std::optional<std::string> segments_file = c.args().Get("segments");
  if (!shard_flag.has_value())
    return c.Usage("--shard HOST:PORT is required: the shard to recover");
  if (!from.has_value()) {
    return c.Usage("--from FILE is required: the export (segctl export) to take its profiles from");
  }
  if (from_peer.has_value() && segments_file.has_value()) {
    return c.Usage("take the segments from --from-peer or from --segments, not both");
  }
  absl::StatusOr<int> shard = c.ShardIndex(*shard_flag);
  if (!shard.ok()) return c.Usage(absl::StrCat("--shard: ", shard.status().message()));
  const std::string& address = c.servers()[*shard];
  if (from_peer.has_value() && *from_peer == address) {
    return c.Usage("--from-peer: a shard cannot be recovered from itself");
  }
  client::ReplayOptions replay_options;
  replay_options.only_shard = *shard;
  replay_options.quiet = c.args().Has("quiet");
  absl::StatusOr<uint64_t> streams = c.PositiveFlag("streams", 4);
  if (!streams.ok()) return c.Usage(std::string(streams.status().message()));
  absl::StatusOr<uint64_t> message_mb = c.PositiveFlag("message-mb", 4);
  if (!message_mb.ok()) return c.Usage(std::string(message_mb.status().message()));
  replay_options.streams_per_shard = static_cast<int>(std::min<uint64_t>(*streams, 64));
  replay_options.message_bytes = static_cast<size_t>(*message_mb) << 20;

  absl::StatusOr<std::unique_ptr<client::ClusterClient>> target = c.ClientOf(address);
  if (!target.ok()) return c.Usage(std::string(target.status().message()));
  std::printf("recovering %s (shard %d of %zu)\n", address.c_str(), *shard, c.servers().size());

  absl::StatusOr<v1::Stats> before = StatsOf(c, address);
  if (!before.ok()) {
    return c.Fail(absl::Status(
        before.status().code(),
        absl::StrCat(before.status().message(), " (restart the shard before recovering it)")));
  }
  if (before->profiles() > 0 && !c.args().Has("force")) {
    return c.Fail(absl::FailedPreconditionError(absl::StrCat(
        address, " holds ", before->profiles(),
        " profiles: recover rebuilds a shard that restarted empty (--force replays over them)")));
  }

  // The peer: the one named, else the first other shard that answers.
  std::vector<std::string> candidates;
  if (from_peer.has_value()) {
    candidates.push_back(*from_peer);
  } else {
    for (const std::string& server : c.servers()) {
      if (server != address) candidates.push_back(server);
    }
  }
  std::string peer;
  absl::StatusOr<v1::Stats> peer_stats = absl::UnavailableError("no other shard in --servers");
  for (const std::string& candidate : candidates) {
    peer_stats = StatsOf(c, candidate);
    if (peer_stats.ok()) {
      peer = candidate;
      break;
    }
    std::fprintf(stderr, "segctl: peer %s: %s\n", candidate.c_str(),
                 peer_stats.status().ToString().c_str());
  }
  if (peer.empty() && !segments_file.has_value()) {
    return c.Fail(absl::Status(
        peer_stats.status().code(),
        absl::StrCat("no peer shard answered to take the segment definitions from (",
                     peer_stats.status().message(), "); give them with --segments FILE")));
  }

  // 1. The clock: a shard on the manual clock restarts at its --start-time; the cluster's
  // time has moved on. Set before anything is replayed, so that retention and windows
  // apply as on the peers and no time-driven change follows the replay.
  if (!peer.empty() && peer_stats->now() > before->now()) {
    v1::SetTimeRequest set;
    set.set_now(peer_stats->now());
    absl::StatusOr<v1::SetTimeResponse> now = (*target)->SetTime(set);
    if (now.ok()) {
      std::printf("clock: set to %s, as on %s\n", FormatTime(now->now()).c_str(), peer.c_str());
    } else if (now.status().code() != absl::StatusCode::kFailedPrecondition) {
      return c.Fail(now.status());
    }  // else the system clock: it is the peers' too
  }

  // 2. The segment definitions.
  std::vector<v1::Segment> segments;
  std::string source;
  if (segments_file.has_value()) {
    absl::StatusOr<std::vector<v1::Segment>> read = ReadSegments(*segments_file);
    if (!read.ok()) return c.Fail(read.status());
    segments = *std::move(read);
    source = *segments_file;
  } else {
    absl::StatusOr<std::unique_ptr<client::ClusterClient>> one = c.ClientOf(peer);
    if (!one.ok()) return c.Usage(std::string(one.status().message()));
    absl::StatusOr<v1::ListSegmentsResponse> list = (*one)->ListSegments();
    if (!list.ok()) return c.Fail(list.status());
    segments.assign(list->segments().begin(), list->segments().end());
    source = peer;
  }
  if (absl::Status put = PutSegments(**target, segments); !put.ok()) return c.Fail(put);
  std::printf("segments: %zu put, from %s\n", segments.size(), source.c_str());

  // 3. The profiles the ring assigns to the shard.
  absl::StatusOr<std::unique_ptr<client::Replayer>> replayer =
      c.cluster().NewReplayer(replay_options);
  if (!replayer.ok()) return c.Usage(std::string(replayer.status().message()));
  const absl::Time start = absl::Now();
  absl::StatusOr<FileReplay> replay = ReplayFile(c, **replayer, *from);
  if (!replay.ok()) return c.Fail(replay.status());
  const client::ReplayResult& r = replay->result;
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf(
      "profiles: %s replayed (%s events), %s rejected; %s of %s in %s belong to other "
      "shards (%.1f s)\n",
      FormatCount(r.profiles).c_str(), FormatCount(r.events).c_str(),
      FormatCount(r.errors.size()).c_str(), FormatCount(r.skipped).c_str(),
      FormatCount(replay->read).c_str(), from->c_str(), seconds);

  absl::StatusOr<v1::Stats> after = StatsOf(c, address);
  if (!after.ok()) return c.Fail(after.status());
  std::printf("recovered %s: %s profiles, %u segments, clock %s\n", address.c_str(),
              FormatCount(after->profiles()).c_str(), after->segments(),
              FormatTime(after->now()).c_str());
  return r.errors.empty() ? kExitOk : kExitFailed;
}

}  // namespace

std::vector<Command> RecoverCommands() {
  return {
      {{"recover"},
       "",
       "rebuild a shard that restarted empty, from an export and a peer",
       "--servers must list the whole cluster, as the producers route with it. Steps:\n"
       "  1. the shard's clock is set to a peer's, when it is behind (shards on the manual\n"
       "     clock restart at their --start-time; on the system clock nothing is done);\n"
       "  2. every segment definition is put on it: from the peer's ListSegments (the first\n"
       "     other shard that answers, or --from-peer), or from --segments FILE as written by\n"
       "     `segctl segment list --json`; segments that refer to others come after them;\n"
       "  3. the profiles of the export FILE that the ring assigns to the shard are replayed\n"
       "     into it over parallel Replay calls; the others are skipped.\n"
       "The shard emits the ENTERs of its replayed members (cause CAUSE_REPLAY), so that a\n"
       "subscriber that re-snapshot it while it was still empty still learns them; --quiet\n"
       "leaves them out, which is right only when no subscriber can reach the shard until\n"
       "recover is done. Afterwards, re-send to the cluster the updates made after the\n"
       "export was taken. A shard that holds profiles is refused unless --force.\n\n"
       "  segctl recover --servers a:7070,b:7070,c:7070 --shard b:7070 --from backup.jsonl\n",
       {{"shard", "HOST:PORT", "the shard to recover: one of --servers (or its index)"},
        {"from", "FILE", "the export to take the profiles from (segctl export; - for stdin)"},
        {"from-peer", "HOST:PORT",
         "take the segments and the clock from this shard (default: the first other shard "
         "that answers)"},
        {"segments", "FILE", "take the segments from FILE (segctl segment list --json)"},
        {"quiet", "", "emit no membership changes for the replayed profiles"},
        {"force", "", "recover even if the shard already holds profiles"},
        {"streams", "N", "parallel Replay calls (default 4)"},
        {"message-mb", "N", "MiB of profiles per Replay message (default 4)"}},
       0,
       0,
       true,
       Recover},
  };
}

}  // namespace segd::segctl
