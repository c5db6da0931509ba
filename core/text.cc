#include "core/text.h"

#include <cstdint>
#include <cstring>

namespace segd {
namespace {

// The length of the valid UTF-8 sequence at p (p < end, *p >= 0x80), or 0 if none.
size_t Utf8SequenceAt(const unsigned char* p, const unsigned char* end) {
  const unsigned char c = *p;
  ptrdiff_t n;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) {
    n = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (end - p < n) return 0;
  for (ptrdiff_t i = 1; i < n; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return static_cast<size_t>(n);
}

}  // namespace

namespace text_internal {

bool IsValidUtf8Sequences(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    // ASCII, eight bytes at a time: names, keys and most values are.
    if (end - p >= 8) {
      uint64_t word;
      std::memcpy(&word, p, sizeof word);
      if ((word & 0x8080808080808080ULL) == 0) {
        p += 8;
        continue;
      }
    }
    if (*p < 0x80) {
      ++p;
      continue;
    }
    const size_t n = Utf8SequenceAt(p, end);
    if (n == 0) return false;
    p += n;
  }
  return true;
}

}  // namespace text_internal

std::string ToValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    if (*p < 0x80) {
      out.push_back(static_cast<char>(*p++));
      continue;
    }
    const size_t n = Utf8SequenceAt(p, end);
    if (n == 0) {
      out.append("\xEF\xBF\xBD");  // U+FFFD
      ++p;
      continue;
    }
    out.append(reinterpret_cast<const char*>(p), n);
    p += n;
  }
  return out;
}

}  // namespace segd
