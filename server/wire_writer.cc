#include "server/wire_writer.h"

#include <bit>

#include "server/convert.h"

namespace segd::server::wire {
namespace {

// segd.v1 field numbers (see proto/segd/v1/segd.proto).
constexpr uint32_t kBatchChanges = 1, kBatchCursor = 2, kBatchSnapshotDone = 3;
constexpr uint32_t kChangeKey = 1, kChangeSegment = 2, kChangeKind = 3, kChangeTime = 4,
                   kChangeCause = 5;

// The tag and length of a length-delimited field of `n` bytes, and the bytes.
size_t FieldSize(size_t n) { return 1 + VarintSize(n) + n; }

}  // namespace

size_t VarintSize(uint64_t v) { return v == 0 ? 1 : (std::bit_width(v) + 6) / 7; }

void AppendVarint(uint64_t v, std::string* out) {
  char buf[10];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}

void AppendTag(uint32_t field, WireType type, std::string* out) {
  AppendVarint((uint64_t{field} << 3) | static_cast<uint64_t>(type), out);
}

void AppendBytesField(uint32_t field, std::string_view bytes, std::string* out) {
  AppendTag(field, WireType::kLengthDelimited, out);
  AppendVarint(bytes.size(), out);
  out->append(bytes);
}

void AppendVarintField(uint32_t field, uint64_t v, std::string* out) {
  AppendTag(field, WireType::kVarint, out);
  AppendVarint(v, out);
}

// Proto3 leaves out a scalar that holds its default: an empty string, a time of 0, an
// enum's 0 (UNSPECIFIED, which no change has).
void AppendBatchChange(const ChangeView& c, std::string* batch) {
  const auto time = static_cast<uint64_t>(c.time);  // int64: two's complement, 10 bytes if < 0
  const auto kind = static_cast<uint64_t>(ToProto(c.kind));
  const auto cause = static_cast<uint64_t>(ToProto(c.cause));
  size_t size = 0;
  if (!c.key.empty()) size += FieldSize(c.key.size());
  if (!c.segment.empty()) size += FieldSize(c.segment.size());
  if (kind != 0) size += 1 + VarintSize(kind);
  if (time != 0) size += 1 + VarintSize(time);
  if (cause != 0) size += 1 + VarintSize(cause);
  AppendTag(kBatchChanges, WireType::kLengthDelimited, batch);
  AppendVarint(size, batch);
  if (!c.key.empty()) AppendBytesField(kChangeKey, c.key, batch);
  if (!c.segment.empty()) AppendBytesField(kChangeSegment, c.segment, batch);
  if (kind != 0) AppendVarintField(kChangeKind, kind, batch);
  if (time != 0) AppendVarintField(kChangeTime, time, batch);
  if (cause != 0) AppendVarintField(kChangeCause, cause, batch);
}

void AppendBatchEnd(std::string_view cursor, bool snapshot_done, std::string* batch) {
  if (!cursor.empty()) AppendBytesField(kBatchCursor, cursor, batch);
  if (snapshot_done) AppendVarintField(kBatchSnapshotDone, 1, batch);
}

}  // namespace segd::server::wire
