#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace segd {

// SPEC §4. Values match the proto enums.
enum class ChangeKind : uint8_t { kEnter = 1, kExit = 2 };
enum class Cause : uint8_t {
  kUpdate = 1,
  kTime = 2,
  kSegmentPut = 3,
  kSegmentDelete = 4,
  kReplay = 5,
  kProfileDelete = 6,
  kSnapshot = 7,
};

std::string_view ChangeKindName(ChangeKind kind);
std::string_view CauseName(Cause cause);

// A profile entering or leaving a segment, at `time` (for TIME changes, the exact
// millisecond the new result began to hold).
struct Change {
  std::string key;
  std::string segment;
  ChangeKind kind = ChangeKind::kEnter;
  int64_t time = 0;
  Cause cause = Cause::kUpdate;
  friend bool operator==(const Change&, const Change&) = default;
};

// A change read in place (ChangeLog::Read), its strings owned by whoever gave it.
struct ChangeView {
  std::string_view key;
  std::string_view segment;
  ChangeKind kind = ChangeKind::kEnter;
  int64_t time = 0;
  Cause cause = Cause::kUpdate;

  ChangeView() = default;
  ChangeView(std::string_view key, std::string_view segment, ChangeKind kind, int64_t time,
             Cause cause)
      : key(key), segment(segment), kind(kind), time(time), cause(cause) {}
  explicit ChangeView(const Change& c) : ChangeView(c.key, c.segment, c.kind, c.time, c.cause) {}
  Change ToChange() const {
    return Change{std::string(key), std::string(segment), kind, time, cause};
  }
};

}  // namespace segd
