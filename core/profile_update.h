#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/value.h"

namespace segd {

// An event as a client sends it (SPEC §1). time 0 means "the server's now" on ingest.
struct Event {
  std::string type;
  int64_t time = 0;
  std::string id;          // optional; non-empty ids de-duplicate per (profile, type)
  NamedValues properties;  // scalars only
  friend bool operator==(const Event&, const Event&) = default;
};

// One update of one profile (SPEC §2), applied atomically in the order
// delete | create, unset, set, increment, events.
struct ProfileUpdate {
  std::string key;
  NamedValues set;
  std::vector<std::string> unset;
  NamedValues increment;
  std::vector<Event> events;
  bool del = false;
};

// A whole profile: what Replay takes (replacing any profile of that key) and what
// GetProfile / Export return. `events` are in history order; `segments` (sorted ids of
// the segments it is a member of) is output only.
struct ProfileData {
  std::string key;
  NamedValues attributes;  // sorted by name on output
  std::vector<Event> events;
  std::vector<std::string> segments;
  friend bool operator==(const ProfileData&, const ProfileData&) = default;
};

}  // namespace segd
