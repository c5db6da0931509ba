#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
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

namespace text_internal {

bool IsValidUtf8Sequences(std::string_view s);

inline uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint64_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Two words of `s` from overlapping loads, with no loop: all of its bytes when it is at
// most 16 bytes long (so that, with the size, they tell strings apart), its first and
// last 8 when longer.
struct Words {
  uint64_t w0;
  uint64_t w1;
  bool operator==(const Words&) const = default;
};
inline Words WordsOf(std::string_view s) {
  const char* p = s.data();
  const size_t n = s.size();
  if (n >= 8) return {Load64(p), Load64(p + n - 8)};
  if (n >= 4) return {Load32(p) | Load32(p + n - 4) << 32, 0};
  if (n > 0) {
    const auto byte = [&](size_t i) { return uint64_t{static_cast<uint8_t>(p[i])}; };
    return {byte(0) | byte(n / 2) << 8 | byte(n - 1) << 16, 0};
  }
  return {0, 0};
}

// The 128-bit product of a and b, its halves in *a (low) and *b (high).
inline void Multiply(uint64_t* a, uint64_t* b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(*a) * *b;
  *a = static_cast<uint64_t>(r);
  *b = static_cast<uint64_t>(r >> 64);
}
inline uint64_t Mix(uint64_t a, uint64_t b) {
  Multiply(&a, &b);
  return a ^ b;
}
inline constexpr uint64_t kSecret0 = 0xa0761d6478bd642full;
inline constexpr uint64_t kSecret1 = 0xe7037ed1a0b428dbull;
// Its address seeds the hash: different in each process (ASLR), as Abseil's is, so that
// a client cannot prepare keys that collide.
inline constexpr char kSeedAnchor = 0;

}  // namespace text_internal

// The bytes of `s` ORed together in a word, each byte in some lane: every byte is ASCII
// iff none of kAsciiHigh's bits is set, also in the OR of several strings' words (which
// checks a whole update at once). Inline and without a byte loop.
inline constexpr uint64_t kAsciiHigh = 0x8080808080808080ull;
inline uint64_t OrOfBytes(std::string_view s) {
  using namespace text_internal;
  const char* p = s.data();
  const size_t n = s.size();
  if (n >= 8) {
    uint64_t bits = Load64(p + n - 8);
    for (size_t i = 0; i + 8 <= n; i += 8) bits |= Load64(p + i);
    return bits;
  }
  return WordsOf(s).w0;  // every byte
}

// Whether every byte of `s` is ASCII: for the names, keys and values every update
// carries, which almost always are.
inline bool IsAscii(std::string_view s) { return (OrOfBytes(s) & kAsciiHigh) == 0; }

// Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
inline bool IsValidUtf8(std::string_view s) {
  return IsAscii(s) || text_internal::IsValidUtf8Sequences(s);
}

// `s` with each byte that is not part of a valid UTF-8 sequence replaced by U+FFFD: for
// echoing a client's bytes in a message that must be UTF-8 (a proto3 string).
std::string ToValidUtf8(std::string_view s);

// A fast hash of a string's bytes: wyhash's scheme (two 64-bit words of the string, one
// 128-bit multiply, one more to finish) for strings of up to 32 bytes — profile keys,
// names and most values, hashed several times for every update — and Abseil's hash for
// longer ones. Inline, with no loop over a short string's bytes.
inline uint64_t HashString(std::string_view s) {
  using namespace text_internal;
  const char* p = s.data();
  const size_t n = s.size();
  uint64_t seed = reinterpret_cast<uintptr_t>(&kSeedAnchor) ^ kSecret0;
  uint64_t a, b;
  if (n <= 16) {
    const Words w = WordsOf(s);
    a = w.w0;
    b = w.w1;
  } else if (n <= 32) {
    seed = Mix(Load64(p) ^ kSecret1, Load64(p + 8) ^ seed);
    a = Load64(p + n - 16);
    b = Load64(p + n - 8);
  } else {
    return absl::Hash<absl::string_view>{}(AsAbsl(s));
  }
  a ^= kSecret1;
  b ^= seed;
  Multiply(&a, &b);
  return Mix(a ^ kSecret0 ^ n, b ^ kSecret1);
}

// a == b, without a call to memcmp for strings of up to 16 bytes (the overlapping
// loads of WordsOf, compared as they are loaded).
inline bool SameString(std::string_view x, std::string_view y) {
  using namespace text_internal;
  const size_t n = x.size();
  if (n != y.size()) return false;
  const char* p = x.data();
  const char* q = y.data();
  if (n > 16) return std::memcmp(p, q, n) == 0;
  if (n >= 8) return ((Load64(p) ^ Load64(q)) | (Load64(p + n - 8) ^ Load64(q + n - 8))) == 0;
  if (n >= 4) return ((Load32(p) ^ Load32(q)) | (Load32(p + n - 4) ^ Load32(q + n - 4))) == 0;
  return n == 0 || (p[0] == q[0] && p[n >> 1] == q[n >> 1] && p[n - 1] == q[n - 1]);
}

// x < y as std::string_view orders them (bytes as unsigned, then size), without a call
// to memcmp when the shorter is at most 16 bytes: the words SameString reads, byte-swapped
// so that comparing them as numbers compares the bytes in order (where two windows
// overlap, the first window's bytes are equal by then).
inline bool StringLess(std::string_view x, std::string_view y) {
  using namespace text_internal;
  const size_t n = std::min(x.size(), y.size());
  if (n > 16) return x < y;
  const char* p = x.data();
  const char* q = y.data();
  uint64_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
  if (n >= 8) {
    a0 = __builtin_bswap64(Load64(p)), a1 = __builtin_bswap64(Load64(p + n - 8));
    b0 = __builtin_bswap64(Load64(q)), b1 = __builtin_bswap64(Load64(q + n - 8));
  } else if (n >= 4) {
    const auto be32 = [](const char* r) {
      return uint64_t{__builtin_bswap32(static_cast<uint32_t>(Load32(r)))};
    };
    a0 = be32(p) << 32 | be32(p + n - 4);
    b0 = be32(q) << 32 | be32(q + n - 4);
  } else if (n > 0) {
    const auto bytes = [n](const char* r) {
      return uint64_t{static_cast<uint8_t>(r[0])} << 16 |
             uint64_t{static_cast<uint8_t>(r[n / 2])} << 8 | static_cast<uint8_t>(r[n - 1]);
    };
    a0 = bytes(p);
    b0 = bytes(q);
  }
  if (a0 != b0) return a0 < b0;
  if (a1 != b1) return a1 < b1;
  return x.size() < y.size();
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return HashString(s); }
};
struct StringEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return SameString(a, b); }
};

// Maps and sets keyed by std::string that can be searched with a std::string_view.
template <typename V>
using StringMap = absl::flat_hash_map<std::string, V, StringHash, StringEq>;
using StringSet = absl::flat_hash_set<std::string, StringHash, StringEq>;

}  // namespace segd
