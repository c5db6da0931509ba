#include "client/cluster_cursor.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

// Layout of the bytes, before base64 (URL-safe alphabet, no padding); integers are
// 32-bit little-endian:
//   "SC" version=1 (one byte)
//   count
//   count × { address length, address bytes, cursor length, cursor bytes }
namespace segd::client {
namespace {

constexpr char kMagic[] = {'S', 'C', 1};

void PutU32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PutBytes(std::string_view bytes, std::string* out) {
  PutU32(static_cast<uint32_t>(bytes.size()), out);
  out->append(bytes);
}

// Reads the encoded bytes front to back.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool U32(uint32_t* v) {
    if (in_.size() < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i)
      *v |= static_cast<uint32_t>(static_cast<uint8_t>(in_[i])) << (8 * i);
    in_.remove_prefix(4);
    return true;
  }

  bool Bytes(std::string* out) {
    uint32_t n = 0;
    if (!U32(&n) || in_.size() < n) return false;
    out->assign(in_.substr(0, n));
    in_.remove_prefix(n);
    return true;
  }

  size_t left() const { return in_.size(); }

 private:
  std::string_view in_;
};

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("cluster cursor: ", what));
}

}  // namespace

std::string ClusterCursor::Encode() const {
  std::string bytes(kMagic, sizeof(kMagic));
  PutU32(static_cast<uint32_t>(shards.size()), &bytes);
  for (const Shard& s : shards) {
    PutBytes(s.address, &bytes);
    PutBytes(s.cursor, &bytes);
  }
  return absl::WebSafeBase64Escape(bytes);
}

absl::StatusOr<ClusterCursor> ClusterCursor::Decode(std::string_view text) {
  std::string bytes;
  if (!absl::WebSafeBase64Unescape(absl::string_view(text.data(), text.size()), &bytes)) {
    return Malformed("not URL-safe base64");
  }
  const std::string_view magic(kMagic, sizeof(kMagic));
  if (std::string_view(bytes).substr(0, 2) != magic.substr(0, 2)) {
    return Malformed("not a cluster cursor (bad magic)");
  }
  if (bytes.size() < 3 || bytes[2] != kMagic[2]) {
    return Malformed("unknown version");
  }
  Reader in(std::string_view(bytes).substr(sizeof(kMagic)));
  uint32_t count = 0;
  if (!in.U32(&count)) return Malformed("truncated shard count");
  // Each shard takes at least 8 bytes: do not trust a count the input cannot hold.
  if (count == 0 || count > in.left() / 8)
    return Malformed(absl::StrCat("bad shard count ", count));
  ClusterCursor cursor;
  cursor.shards.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    Shard& s = cursor.shards[i];
    if (!in.Bytes(&s.address) || !in.Bytes(&s.cursor)) {
      return Malformed(absl::StrCat("truncated in shard ", i));
    }
    if (s.address.empty()) return Malformed(absl::StrCat("shard ", i, " has no address"));
  }
  if (in.left() != 0) return Malformed(absl::StrCat(in.left(), " bytes after the last shard"));
  return cursor;
}

}  // namespace segd::client
