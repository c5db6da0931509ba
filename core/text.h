#pragma once

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"

namespace segd {

// Debian's Abseil is built with its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW
// is 0), so absl::StrCat and absl's heterogeneous lookup do not take std::string_view.
// segd's interfaces use std::string_view; these adapt it where it meets Abseil.
inline absl::string_view AsAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
bool IsValidUtf8(std::string_view s);

// `s` with each byte that is not part of a valid UTF-8 sequence replaced by U+FFFD: for
// echoing a client's bytes in a message that must be UTF-8 (a proto3 string).
std::string ToValidUtf8(std::string_view s);

struct StringHash {
  using is_transparent = void;
  // Abseil's own string hash: for std::string_view, Debian's absl::Hash falls back to
  // std::hash (an out-of-line MurmurHash), which is slower on the short keys and names
  // hashed on every update.
  size_t operator()(std::string_view s) const { return absl::Hash<absl::string_view>{}(AsAbsl(s)); }
};
struct StringEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

// Maps and sets keyed by std::string that can be searched with a std::string_view.
template <typename V>
using StringMap = absl::flat_hash_map<std::string, V, StringHash, StringEq>;
using StringSet = absl::flat_hash_set<std::string, StringHash, StringEq>;

}  // namespace segd
