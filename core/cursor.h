#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace segd {

// A position in an engine's change stream (SPEC §4): the engine incarnation it belongs
// to and, for each shard, the position of the next change to read in its ChangeLog.
// On the wire it is opaque bytes (Encode/Decode), checksummed so that a damaged or
// foreign cursor is recognised.
struct Cursor {
  uint64_t incarnation = 0;
  std::vector<uint64_t> positions;
  friend bool operator==(const Cursor&, const Cursor&) = default;
};

std::string EncodeCursor(const Cursor& cursor);
// INVALID_ARGUMENT when the bytes are not a cursor.
absl::StatusOr<Cursor> DecodeCursor(std::string_view bytes);

}  // namespace segd
