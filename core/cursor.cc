#include "core/cursor.h"

#include "absl/strings/str_cat.h"

namespace segd {
namespace {

// Layout: version byte (1), varint incarnation, varint shard count, one varint position
// per shard, then a 4-byte little-endian FNV-1a hash of everything before it.
constexpr uint8_t kVersion = 1;
constexpr size_t kMaxShards = 4096;

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

uint32_t Fnv1a(std::string_view bytes) {
  uint32_t h = 2166136261u;
  for (char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 16777619u;
  }
  return h;
}

}  // namespace

std::string EncodeCursor(const Cursor& cursor) {
  std::string out;
  out.push_back(static_cast<char>(kVersion));
  PutVarint(&out, cursor.incarnation);
  PutVarint(&out, cursor.positions.size());
  for (uint64_t p : cursor.positions) PutVarint(&out, p);
  const uint32_t h = Fnv1a(out);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(h >> (8 * i)));
  return out;
}

absl::StatusOr<Cursor> DecodeCursor(std::string_view bytes) {
  auto malformed = [] { return absl::InvalidArgumentError("cursor: not a segd cursor"); };
  if (bytes.size() < 1 + 4) return malformed();
  std::string_view body = bytes.substr(0, bytes.size() - 4);
  uint32_t h = 0;
  for (int i = 0; i < 4; ++i) {
    h |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[body.size() + i])) << (8 * i);
  }
  if (h != Fnv1a(body) || static_cast<uint8_t>(body[0]) != kVersion) return malformed();
  body.remove_prefix(1);
  Cursor cursor;
  uint64_t n = 0;
  if (!GetVarint(&body, &cursor.incarnation) || !GetVarint(&body, &n) || n > kMaxShards) {
    return malformed();
  }
  cursor.positions.resize(n);
  for (uint64_t& p : cursor.positions) {
    if (!GetVarint(&body, &p)) return malformed();
  }
  if (!body.empty()) return malformed();
  return cursor;
}

}  // namespace segd
