#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/change.h"
#include "core/cursor.h"

namespace segd {

// A snapshot of the members of some segments, and the cursor of the cut: reading
// the change log after `cursor` continues exactly where the snapshot ends (SPEC §4).
//
// A subscriber holds its snapshot while it is sent, so it is compact: per shard and
// segment, the members' keys back to back in one buffer (about the key's size plus 4
// bytes a member), read out as ENTER/SNAPSHOT changes a batch at a time.
struct Snapshot {
  struct Group {
    std::string segment;
    int64_t time = 0;            // the shard's time at the cut
    std::string keys;            // the members' keys, back to back
    std::vector<uint32_t> ends;  // ends[i]: the end of key i in `keys`
  };
  // Where Read goes on from.
  struct Position {
    size_t group = 0;
    size_t member = 0;
  };

  std::vector<Group> groups;
  Cursor cursor;

  // Members in all groups.
  size_t size() const;
  // Appends the changes of at most `max` members from `*pos` on to `out` and moves
  // `*pos` past them; returns how many were appended (0: the snapshot is exhausted).
  size_t Read(Position* pos, size_t max, std::vector<Change>* out) const;
};

}  // namespace segd
