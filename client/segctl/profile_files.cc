#include "client/segctl/profile_files.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/segctl/line_reader.h"
#include "client/segctl/output.h"
#include "client/segctl/progress.h"

namespace segd::segctl {
namespace {

// Lines parsed together by one task.
constexpr size_t kChunkLines = 512;

// Lines of the file, parsed into profiles off the reading thread.
struct Chunk {
  std::vector<std::string> lines;
  std::vector<uint64_t> numbers;  // numbers[i]: the file line of lines[i]
  std::vector<v1::Profile> profiles;
  absl::Status error;  // the first line that is not a Profile, naming it
};

void Parse(const std::string& name, Chunk& chunk) {
  chunk.profiles.resize(chunk.lines.size());
  for (size_t i = 0; i < chunk.lines.size(); ++i) {
    if (absl::Status parsed = FromJson(chunk.lines[i], &chunk.profiles[i]); !parsed.ok()) {
      chunk.error = absl::InvalidArgumentError(
          absl::StrCat(name, ":", chunk.numbers[i], ": ", parsed.message()));
      chunk.profiles.resize(i);
      return;
    }
  }
  chunk.lines.clear();
}

// The key of a line that starts `{"key":"<key>"` with no escape in <key> — how
// `segctl export` writes every profile — so that a line of another shard can be skipped
// without parsing it; nullopt otherwise (the line is then parsed whole).
std::optional<std::string_view> PeekKey(std::string_view line) {
  constexpr std::string_view kPrefix = "{\"key\":\"";
  if (line.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  const size_t end = line.find('"', kPrefix.size());
  if (end == std::string_view::npos) return std::nullopt;
  const std::string_view key = line.substr(kPrefix.size(), end - kPrefix.size());
  if (key.find('\\') != std::string_view::npos) return std::nullopt;
  return key;
}

}  // namespace

// The file is read on the calling thread and cut into chunks of lines, which are parsed
// as JSON — the costly part — by up to one task per core, and handed to the replayer in
// file order.
absl::StatusOr<FileReplay> ReplayFile(const Context& context, client::Replayer& replayer,
                                      const std::string& path) {
  absl::StatusOr<std::unique_ptr<LineReader>> reader = LineReader::Open(path);
  if (!reader.ok()) return reader.status();
  LineReader& in = **reader;
  const size_t max_parsing = std::max(2u, std::thread::hardware_concurrency());
  Progress progress(context.progress(), "replayed", "profiles");
  FileReplay replay;
  uint64_t skipped = 0;         // lines of other shards, not parsed
  std::vector<uint64_t> lines;  // lines[i]: the line of the i-th profile given to the replayer
  absl::Status failure;

  std::deque<std::pair<std::unique_ptr<Chunk>, std::future<void>>> parsing;
  auto hand_over = [&]() {
    auto [chunk, parsed] = std::move(parsing.front());
    parsing.pop_front();
    parsed.get();
    if (failure.ok()) {
      for (size_t i = 0; i < chunk->profiles.size() && failure.ok(); ++i) {
        lines.push_back(chunk->numbers[i]);
        failure = replayer.Add(std::move(chunk->profiles[i]));
      }
      if (failure.ok()) failure = chunk->error;
    }
    progress.Update(replayer.sent(), in.fraction());
  };
  auto chunk = std::make_unique<Chunk>();
  auto submit = [&]() {
    if (chunk->lines.empty()) return;
    Chunk* c = chunk.get();
    parsing.emplace_back(std::move(chunk),
                         std::async(std::launch::async, [c, &in] { Parse(in.name(), *c); }));
    chunk = std::make_unique<Chunk>();
    while (parsing.size() > max_parsing) hand_over();
  };

  std::string_view line;
  while (failure.ok() && in.Next(&line)) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    ++replay.read;
    if (std::optional<std::string_view> key = PeekKey(line); key && !replayer.Accepts(*key)) {
      ++skipped;
      continue;
    }
    chunk->lines.emplace_back(line);
    chunk->numbers.push_back(in.line_number());
    if (chunk->lines.size() == kChunkLines) submit();
  }
  if (failure.ok()) failure = in.status();
  submit();
  while (!parsing.empty()) hand_over();
  progress.Clear();
  absl::StatusOr<client::ReplayResult> result = replayer.Finish();
  if (!failure.ok()) return failure;
  if (!result.ok()) return result.status();
  for (const client::ReplayError& e : result->errors) {
    std::fprintf(stderr, "segctl: %s:%llu: profile \"%s\" rejected: %s\n", in.name().c_str(),
                 static_cast<unsigned long long>(e.index < lines.size() ? lines[e.index] : 0),
                 e.key.c_str(), e.message.c_str());
  }
  replay.result = *std::move(result);
  replay.result.skipped += skipped;
  return replay;
}

}  // namespace segd::segctl
