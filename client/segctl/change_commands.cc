// segctl subscribe: tails the cluster's merged change stream (SPEC §4, §6) as JSON lines.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/segctl/command.h"
#include "client/segctl/output.h"

namespace segd::segctl {
namespace {

// How often a waiting subscribe looks at its stop conditions.
constexpr absl::Duration kPoll = absl::Milliseconds(100);

// Replaces `path` with `cursor` and a newline, atomically (a reader never sees half).
absl::Status SaveCursor(const std::string& path, const std::string& cursor) {
  const std::string temp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(temp, std::ios::trunc);
    out << cursor << "\n";
    out.flush();
    if (!out) return absl::FailedPreconditionError(absl::StrCat(temp, ": cannot write"));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot rename ", temp, " to ", path));
  }
  return absl::OkStatus();
}

int Subscribe(Context& c) {
  v1::SubscribeRequest request;
  if (std::optional<std::string> segments = c.args().Get("segments")) {
    for (absl::string_view id : absl::StrSplit(*segments, ',', absl::SkipWhitespace())) {
      request.add_segments(std::string(absl::StripAsciiWhitespace(id)));
    }
  }
  request.set_snapshot(c.args().Has("snapshot"));
  const std::optional<std::string> cursor_file = c.args().Get("cursor-file");
  std::string cursor = c.args().GetOr("cursor", "");
  if (cursor.empty() && cursor_file.has_value()) {
    if (absl::StatusOr<std::string> saved = ReadText(*cursor_file); saved.ok()) {
      cursor = std::string(absl::StripAsciiWhitespace(*saved));
    } else if (saved.status().code() != absl::StatusCode::kNotFound) {
      return c.Fail(saved.status());
    }
  }
  if (request.snapshot() && !cursor.empty()) {
    return c.Usage("--snapshot starts afresh: it cannot resume from a cursor");
  }
  request.set_cursor(cursor);
  uint64_t max_changes = UINT64_MAX;
  if (std::optional<std::string> n = c.args().Get("max-changes")) {
    if (!absl::SimpleAtoi(*n, &max_changes) || max_changes == 0) {
      return c.Usage("--max-changes: expected a positive number");
    }
  }
  absl::Time until = absl::InfiniteFuture();
  if (std::optional<std::string> d = c.args().Get("duration")) {
    absl::StatusOr<int64_t> ms = ParseDurationMs(*d);
    if (!ms.ok()) return c.Usage(absl::StrCat("--duration: ", ms.status().message()));
    until = absl::Now() + absl::Milliseconds(*ms);
  }

  absl::StatusOr<std::unique_ptr<client::Subscription>> subscription =
      c.cluster().Subscribe(request);
  if (!subscription.ok()) return c.Fail(subscription.status());
  InstallStopHandler();

  uint64_t changes = 0;
  std::string last_cursor = cursor;
  int exit_code = kExitOk;
  while (changes < max_changes && !StopRequested() && absl::Now() < until) {
    absl::StatusOr<client::MergedBatch> step =
        (*subscription)->Next(std::min(until, absl::Now() + kPoll));
    if (!step.ok()) {
      if (step.status().code() == absl::StatusCode::kDeadlineExceeded) continue;
      exit_code = c.Fail(step.status());
      break;
    }
    switch (step->kind) {
      case client::MergedBatch::Kind::kChanges:
        for (const v1::Change& change : step->batch.changes()) PrintJson(change);
        changes += static_cast<uint64_t>(step->batch.changes_size());
        std::fflush(stdout);
        if (step->batch.snapshot_done()) {
          std::fprintf(stderr, "segctl: snapshot complete on every shard; live changes follow\n");
        }
        break;
      case client::MergedBatch::Kind::kResnapshot:
        std::fprintf(stderr,
                     "segctl: shard %s is sent again from scratch (%s): forget the memberships "
                     "of its keys (segctl route KEY); its members follow as ENTERs with cause "
                     "CAUSE_SNAPSHOT\n",
                     step->address.c_str(), step->reason.ToString().c_str());
        break;
      case client::MergedBatch::Kind::kReconnecting:
        std::fprintf(stderr, "segctl: shard %s: reconnecting (%s)\n", step->address.c_str(),
                     step->reason.ToString().c_str());
        break;
    }
    if (!step->batch.cursor().empty() && step->batch.cursor() != last_cursor) {
      last_cursor = step->batch.cursor();
      if (cursor_file.has_value()) {
        if (absl::Status saved = SaveCursor(*cursor_file, last_cursor); !saved.ok()) {
          exit_code = c.Fail(saved);
          break;
        }
      }
    }
  }
  (*subscription)->Cancel();
  if (!last_cursor.empty()) {
    std::fprintf(stderr, "segctl: %s changes; resume with --cursor=%s\n",
                 FormatCount(changes).c_str(), last_cursor.c_str());
  } else if (exit_code == kExitOk) {
    std::fprintf(stderr,
                 "segctl: %s changes; no cursor to resume from: stopped before every shard "
                 "had answered%s\n",
                 FormatCount(changes).c_str(), request.snapshot() ? " and sent its snapshot" : "");
  }
  return exit_code;
}

}  // namespace

std::vector<Command> ChangeCommands() {
  return {
      {{"subscribe"},
       "",
       "tail membership changes as JSON lines (one Change per line)",
       "Merges every shard's change stream. Each line of stdout is one Change message\n"
       "(key, segment, kind, time, cause). Notices go to stderr: a shard whose cursor can no\n"
       "longer be served (it restarted, or this subscriber fell behind its change log) is\n"
       "sent again from scratch — forget the memberships of its keys, its members follow as\n"
       "ENTERs with cause CAUSE_SNAPSHOT — and reconnects of a shard that went away.\n\n"
       "Runs until interrupted (Ctrl-C), --max-changes or --duration, then prints on stderr\n"
       "the cursor that resumes right after the last change printed: --cursor=CURSOR loses\n"
       "and repeats nothing. A cursor exists once every shard has answered (with --snapshot:\n"
       "once every shard has sent its snapshot). --cursor-file keeps it in a file, rewritten\n"
       "after every batch, and resumes from it when it exists.\n\n"
       "  segctl subscribe --snapshot --segments vip,at_risk_vip\n"
       "  segctl subscribe --cursor-file vip.cursor --segments vip\n",
       {{"segments", "ID,...", "only these segments (default: all, also those created later)"},
        {"snapshot", "", "first send every current member as an ENTER (cause CAUSE_SNAPSHOT)"},
        {"cursor", "CURSOR", "resume after the change this cursor was printed for"},
        {"cursor-file", "FILE", "resume from and keep the cursor in FILE"},
        {"max-changes", "N", "stop after the batch that brings N changes or more"},
        {"duration", "DURATION", "stop after this long (e.g. 30s)"}},
       0,
       0,
       true,
       Subscribe},
  };
}

}  // namespace segd::segctl
