// segctl ingest, replay, export: profile data in and out of the cluster as JSON lines.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "client/segctl/command.h"
#include "client/segctl/line_reader.h"
#include "client/segctl/output.h"
#include "client/segctl/profile_files.h"
#include "client/segctl/progress.h"

namespace segd::segctl {
namespace {

std::string Rate(uint64_t n, absl::Duration elapsed) {
  const double s = absl::ToDoubleSeconds(elapsed);
  return absl::StrFormat("%.1f s, %s/s", s, FormatCount(s > 0 ? static_cast<uint64_t>(n / s) : n));
}

// ---- ingest ----

// A batch sent and waiting for its Ack, with the input line of each of its updates.
struct SentBatch {
  std::future<absl::StatusOr<v1::Ack>> ack;
  std::vector<uint64_t> lines;
};

int Ingest(Context& c) {
  absl::StatusOr<uint64_t> batch_size = c.PositiveFlag("batch", 512);
  if (!batch_size.ok()) return c.Usage(std::string(batch_size.status().message()));
  const std::string path = c.positional().empty() ? "-" : c.positional()[0];
  absl::StatusOr<std::unique_ptr<LineReader>> reader = LineReader::Open(path);
  if (!reader.ok()) return c.Fail(reader.status());
  LineReader& in = **reader;

  const absl::Time start = absl::Now();
  std::unique_ptr<client::Producer> producer = c.cluster().NewProducer();
  Progress progress(c.progress(), "sent", "updates");
  std::deque<SentBatch> sent;
  uint64_t read = 0, applied = 0, rejected = 0;
  absl::Status failure;      // the first error that stops the ingest
  bool send_failed = false;  // a batch failed: a shard is down, sending more is pointless
  uint64_t seq = 0;

  // Takes the result of the oldest batch: prints its rejected updates, or records how it
  // failed (which stops sending: a shard is down or the stream broke).
  auto reap = [&](SentBatch& batch) {
    absl::StatusOr<v1::Ack> ack = batch.ack.get();
    if (!ack.ok()) {
      send_failed = true;
      if (failure.ok()) {
        failure = absl::Status(ack.status().code(),
                               absl::StrCat(in.name(), " lines ", batch.lines.front(), "-",
                                            batch.lines.back(), ": ", ack.status().message()));
      }
      return;
    }
    applied += ack->applied();
    for (const v1::UpdateError& e : ack->errors()) {
      ++rejected;
      std::fprintf(stderr, "segctl: %s:%llu: update of \"%s\" rejected: %s\n", in.name().c_str(),
                   static_cast<unsigned long long>(
                       e.index() < batch.lines.size() ? batch.lines[e.index()] : 0),
                   e.key().c_str(), e.message().c_str());
    }
  };
  auto reap_ready = [&] {
    while (!sent.empty() &&
           sent.front().ack.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      reap(sent.front());
      sent.pop_front();
    }
  };

  v1::UpdateBatch batch;
  std::vector<uint64_t> lines;
  auto send = [&] {
    if (batch.updates_size() == 0) return;
    batch.set_seq(++seq);
    sent.push_back(SentBatch{producer->Send(std::move(batch)), std::move(lines)});
    batch = v1::UpdateBatch();
    lines.clear();
    reap_ready();
  };
  std::string_view line;
  while (failure.ok() && in.Next(&line)) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    v1::ProfileUpdate* update = batch.add_updates();
    if (absl::Status parsed = FromJson(line, update); !parsed.ok()) {
      batch.mutable_updates()->RemoveLast();
      failure = absl::InvalidArgumentError(
          absl::StrCat(in.name(), ":", in.line_number(), ": ", parsed.message()));
      break;
    }
    lines.push_back(in.line_number());
    ++read;
    if (static_cast<uint64_t>(batch.updates_size()) >= *batch_size) send();
    if ((read & 255) == 0) progress.Update(read, in.fraction());
  }
  if (failure.ok()) failure = in.status();
  if (!send_failed) send();  // the lines before a malformed one too
  while (!sent.empty()) {
    reap(sent.front());
    sent.pop_front();
  }
  const absl::Status closed = producer->Close();
  if (failure.ok()) failure = closed;
  progress.Clear();
  std::printf("ingested %s updates from %s: %s applied, %s rejected (%s)\n",
              FormatCount(read).c_str(), in.name().c_str(), FormatCount(applied).c_str(),
              FormatCount(rejected).c_str(), Rate(read, absl::Now() - start).c_str());
  if (!failure.ok()) return c.Fail(failure);
  return rejected == 0 ? kExitOk : kExitFailed;
}

// ---- replay ----

// ReplayOptions from --quiet, --only-shard, --streams, --message-mb.
absl::StatusOr<client::ReplayOptions> ReplayFlags(const Context& c) {
  client::ReplayOptions options;
  options.quiet = c.args().Has("quiet");
  absl::StatusOr<uint64_t> streams = c.PositiveFlag("streams", 2);
  if (!streams.ok()) return streams.status();
  options.streams_per_shard = static_cast<int>(*streams);
  absl::StatusOr<uint64_t> mb = c.PositiveFlag("message-mb", 4);
  if (!mb.ok()) return mb.status();
  options.message_bytes = static_cast<size_t>(*mb) << 20;
  if (std::optional<std::string> shard = c.args().Get("only-shard")) {
    absl::StatusOr<int> index = c.ShardIndex(*shard);
    if (!index.ok())
      return absl::InvalidArgumentError(absl::StrCat("--only-shard: ", index.status().message()));
    options.only_shard = *index;
  }
  return options;
}

int Replay(Context& c) {
  absl::StatusOr<client::ReplayOptions> options = ReplayFlags(c);
  if (!options.ok()) return c.Usage(std::string(options.status().message()));
  const std::string path = c.positional().empty() ? "-" : c.positional()[0];
  absl::StatusOr<std::unique_ptr<client::Replayer>> replayer = c.cluster().NewReplayer(*options);
  if (!replayer.ok()) return c.Usage(std::string(replayer.status().message()));
  const absl::Time start = absl::Now();
  absl::StatusOr<FileReplay> replay = ReplayFile(c, **replayer, path);
  if (!replay.ok()) return c.Fail(replay.status());
  const client::ReplayResult& r = replay->result;
  std::printf("replayed %s profiles (%s events) from %s to %s: %s rejected%s (%s)\n",
              FormatCount(r.profiles).c_str(), FormatCount(r.events).c_str(),
              path == "-" ? "stdin" : path.c_str(),
              options->only_shard.has_value() ? c.servers()[*options->only_shard].c_str()
                                              : absl::StrCat(c.servers().size(), " shards").c_str(),
              FormatCount(r.errors.size()).c_str(),
              r.skipped > 0
                  ? absl::StrCat(", ", FormatCount(r.skipped), " of other shards skipped").c_str()
                  : "",
              Rate(replay->read, absl::Now() - start).c_str());
  return r.errors.empty() ? kExitOk : kExitFailed;
}

// ---- export ----

int Export(Context& c) {
  std::optional<int> shard;
  if (std::optional<std::string> s = c.args().Get("only-shard")) {
    absl::StatusOr<int> index = c.ShardIndex(*s);
    if (!index.ok()) return c.Usage(absl::StrCat("--only-shard: ", index.status().message()));
    shard = *index;
  }
  const std::string path = c.positional().empty() ? "-" : c.positional()[0];
  const std::string temp = absl::StrCat(path, ".tmp");
  std::FILE* out = path == "-" ? stdout : std::fopen(temp.c_str(), "wb");
  if (out == nullptr) {
    return c.Fail(absl::FailedPreconditionError(absl::StrCat(temp, ": ", std::strerror(errno))));
  }
  static constexpr size_t kBuffer = 1 << 20;
  std::setvbuf(out, nullptr, _IOFBF, kBuffer);

  Progress progress(c.progress(), "exported", "profiles");
  if (c.progress()) {
    if (absl::StatusOr<client::ClusterStats> stats = c.cluster().GetStats(); stats.ok()) {
      progress.SetTotal(shard.has_value() ? stats->shards[*shard].profiles()
                                          : stats->total.profiles());
    }
  }
  // Every shard's export streams at once, on a thread each that turns its batches into
  // JSON lines; whole batches are written under a lock (the order of profiles in the
  // file does not matter).
  const absl::Time start = absl::Now();
  absl::Mutex mu;
  uint64_t profiles = 0, events = 0;
  std::vector<int> shards;
  for (int s = 0; s < static_cast<int>(c.servers().size()); ++s) {
    if (!shard.has_value() || *shard == s) shards.push_back(s);
  }
  std::vector<std::future<absl::Status>> exports;
  for (int s : shards) {
    exports.push_back(std::async(std::launch::async, [&, s] {
      std::string text;
      return c.cluster().Export(
          [&](v1::ExportBatch& batch) {
            text.clear();
            uint64_t batch_events = 0;
            for (const v1::Profile& profile : batch.profiles()) {
              text += ToCompactJson(profile);
              text += '\n';
              batch_events += static_cast<uint64_t>(profile.events_size());
            }
            absl::MutexLock lock(&mu);
            if (std::fwrite(text.data(), 1, text.size(), out) != text.size()) {
              return absl::FailedPreconditionError(
                  absl::StrCat(path == "-" ? "stdout" : temp, ": ", std::strerror(errno)));
            }
            profiles += static_cast<uint64_t>(batch.profiles_size());
            events += batch_events;
            return absl::OkStatus();
          },
          s);
    }));
  }
  absl::Status status;
  for (std::future<absl::Status>& e : exports) {
    while (e.wait_for(std::chrono::milliseconds(200)) != std::future_status::ready) {
      absl::MutexLock lock(&mu);
      progress.Update(profiles);
    }
    if (absl::Status s = e.get(); status.ok()) status = s;
  }
  progress.Clear();
  if (std::fflush(out) != 0 && status.ok()) {
    status = absl::FailedPreconditionError(
        absl::StrCat(path == "-" ? "stdout" : temp, ": ", std::strerror(errno)));
  }
  if (path == "-") return status.ok() ? kExitOk : c.Fail(status);
  std::fclose(out);
  if (!status.ok()) {
    std::remove(temp.c_str());
    return c.Fail(status);
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return c.Fail(absl::FailedPreconditionError(
        absl::StrCat("cannot rename ", temp, " to ", path, ": ", std::strerror(errno))));
  }
  std::printf("exported %s profiles (%s events) from %s to %s (%s)\n",
              FormatCount(profiles).c_str(), FormatCount(events).c_str(),
              shard.has_value() ? c.servers()[*shard].c_str()
                                : absl::StrCat(c.servers().size(), " shards").c_str(),
              path.c_str(), Rate(profiles, absl::Now() - start).c_str());
  return kExitOk;
}

const FlagSpec kOnlyShardFlag = {
    "only-shard", "HOST:PORT", "only the profiles of this shard (one of --servers, or its index)"};

}  // namespace

std::vector<Command> DataCommands() {
  return {
      {{"ingest"},
       "[FILE]",
       "send profile updates, JSON lines of ProfileUpdate, from FILE or stdin",
       "Each line is one ProfileUpdate message (SPEC §2) in protobuf's JSON mapping, e.g.\n"
       "  {\"key\": \"u1\", \"set\": {\"plan\": {\"string_value\": \"pro\"}},\n"
       "   \"events\": [{\"type\": \"login\", \"time\": \"1700000000000\"}]}\n"
       "Updates go to their key's shard in batches, over one stream per shard; updates of one\n"
       "key are applied in file order. A rejected update is printed with its line number\n"
       "and the rest go on (exit 1 at the end). A line that is not a ProfileUpdate stops the\n"
       "ingest there (the lines before it were sent), as does a shard that cannot be reached.\n",
       {{"batch", "N", "updates per batch (default 512)"}},
       0,
       1,
       true,
       Ingest},
      {{"replay"},
       "[FILE]",
       "replace profiles wholesale with full profiles, JSON lines of Profile",
       "Reads what `segctl export` writes (FILE or stdin) and sends each profile to its shard\n"
       "through Ingest.Replay, over parallel calls with large messages. A replayed profile\n"
       "replaces the one of the same key; memberships are evaluated afresh and the changes\n"
       "emitted with cause CAUSE_REPLAY, unless --quiet. With --only-shard, only the profiles\n"
       "the ring maps to that shard are sent (the ring of the whole --servers list).\n",
       {{"quiet", "", "emit no membership changes for the replayed profiles"},
        kOnlyShardFlag,
        {"streams", "N", "parallel Replay calls per shard (default 2)"},
        {"message-mb", "N", "MiB of profiles per Replay message (default 4)"}},
       0,
       1,
       true,
       Replay},
      {{"export"},
       "[FILE]",
       "write every profile as JSON lines of Profile, to FILE or stdout",
       "One Profile message per line: attributes, retained events in history order, and the\n"
       "segments it belongs to (ignored when replayed). The shards are read in parallel, so\n"
       "lines come in no particular order. A FILE is written under FILE.tmp and renamed when\n"
       "complete. `segctl replay` and `segctl recover` read it back.\n",
       {kOnlyShardFlag},
       0,
       1,
       true,
       Export},
  };
}

}  // namespace segd::segctl
