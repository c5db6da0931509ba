#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "client/replayer.h"
#include "client/segctl/command.h"

// Files of full profiles, as `segctl export` writes them and `segctl replay` and
// `segctl recover` read them: JSON lines, one Profile message (SPEC §5) per line, in
// protobuf's JSON mapping. Blank lines are skipped; `segments` is ignored on replay.
namespace segd::segctl {

struct FileReplay {
  uint64_t read = 0;  // profiles read from the file
  client::ReplayResult result;
};

// Reads the profiles of `path` ("-": stdin) and replays them through `replayer` (which
// routes each to its shard, or skips those of other shards), drawing a progress line
// when the context asks for one. Each rejected profile is printed on stderr with its
// line number. Lines of profiles the replayer does not accept (another shard's) are
// counted as skipped, most without being parsed. Errors: the file cannot be read, a line
// is not a Profile (naming the line; nothing after it is sent), or a shard's Replay call
// failed.
absl::StatusOr<FileReplay> ReplayFile(const Context& context, client::Replayer& replayer,
                                      const std::string& path);

}  // namespace segd::segctl
