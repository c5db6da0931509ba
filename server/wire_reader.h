#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "absl/base/attributes.h"

// A forward-only reader of protocol-buffer wire format over bytes in memory, for the
// messages segd reads in bulk without building message objects (wire_decode.h; segload's
// change scan). A nested message is read by a Reader of its own over the bytes
// ReadLengthDelimited returns, so there is no limit stack to maintain.
namespace segd::server::wire {

enum class WireType : uint8_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

// Decodes the varint at `p` into *v if it ends before `end`, within 10 bytes (as protobuf
// reads one): the byte after it, or null.
template <typename Byte>  // char or uint8_t
const Byte* DecodeVarint(const Byte* p, const Byte* end, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    const auto byte = static_cast<uint8_t>(*p++);
    result |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return p;
    }
  }
  return nullptr;
}

// Every Read returns false (and the reader stays failed, done() then true) on truncated
// or malformed input.
class Reader {
 public:
  explicit Reader(std::string_view bytes)
      : begin_(bytes.data()), p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  // A reader of `inner`, bytes this reader returned (a nested message), whose
  // position() counts from the start of this reader's outermost bytes.
  Reader Nested(std::string_view inner) const {
    Reader r(inner);
    r.base_ = base_ + static_cast<size_t>(inner.data() - begin_);
    return r;
  }

  // True once every byte was read, or after a failed Read.
  bool done() const { return p_ == end_; }
  bool failed() const { return failed_; }
  // The offset of the next byte to read, or where the failed Read stopped.
  size_t position() const { return failed_ ? failed_at_ : base_ + static_cast<size_t>(p_ - begin_); }

  ABSL_ATTRIBUTE_ALWAYS_INLINE bool ReadVarint(uint64_t* v) {
    if (p_ != end_ && static_cast<uint8_t>(*p_) < 0x80) {  // most varints are one byte
      *v = static_cast<uint8_t>(*p_++);
      return true;
    }
    return ReadVarintSlow(v);
  }

  // The next field's number (1 to 2^29 - 1) and wire type (one that exists).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool ReadTag(uint32_t* field, WireType* type) {
    uint64_t tag;
    if (!ReadVarint(&tag)) return false;
    const uint64_t number = tag >> 3;
    const uint64_t wire_type = tag & 7;
    if (number == 0 || number > kMaxField || wire_type > 5) return Fail();
    *field = static_cast<uint32_t>(number);
    *type = static_cast<WireType>(wire_type);
    return true;
  }

  ABSL_ATTRIBUTE_ALWAYS_INLINE bool ReadLengthDelimited(std::string_view* bytes) {
    uint64_t n;
    if (!ReadVarint(&n)) return false;
    const char* at = p_;
    if (!SkipBytes(n)) return false;
    *bytes = std::string_view(at, static_cast<size_t>(n));
    return true;
  }

  bool ReadFixed64(uint64_t* v) {
    const char* at = p_;
    if (!SkipBytes(8)) return false;
    unsigned char b[8];
    std::memcpy(b, at, 8);
    uint64_t x = 0;
    for (int i = 7; i >= 0; --i) x = x << 8 | b[i];  // little-endian on the wire
    *v = x;
    return true;
  }

  // Skips the value of field `field` of wire type `type`: a group up to its end-group
  // tag. An end-group tag here has no group to end, and is malformed.
  bool Skip(uint32_t field, WireType type) { return SkipValue(field, type, 0); }

 private:
  static constexpr uint64_t kMaxField = (uint64_t{1} << 29) - 1;
  static constexpr int kMaxGroupDepth = 64;

  bool ReadVarintSlow(uint64_t* v) {
    if (const char* after = DecodeVarint(p_, end_, v)) {
      p_ = after;
      return true;
    }
    p_ += std::min<ptrdiff_t>(end_ - p_, 10);  // where the reading stopped
    return Fail();
  }

  bool SkipValue(uint32_t field, WireType type, int depth) {
    switch (type) {
      case WireType::kVarint: {
        uint64_t ignored;
        return ReadVarint(&ignored);
      }
      case WireType::kFixed64:
        return SkipBytes(8);
      case WireType::kLengthDelimited: {
        std::string_view ignored;
        return ReadLengthDelimited(&ignored);
      }
      case WireType::kFixed32:
        return SkipBytes(4);
      case WireType::kStartGroup: {
        if (depth >= kMaxGroupDepth) return Fail();
        while (true) {
          uint32_t inner;
          WireType inner_type;
          if (!ReadTag(&inner, &inner_type)) return false;
          if (inner_type == WireType::kEndGroup) return inner == field || Fail();
          if (!SkipValue(inner, inner_type, depth + 1)) return false;
        }
      }
      case WireType::kEndGroup:
        break;
    }
    return Fail();
  }

  // Moves past the next n bytes, if there are as many.
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool SkipBytes(uint64_t n) {
    if (static_cast<uint64_t>(end_ - p_) < n) return Fail();
    p_ += n;
    return true;
  }

  bool Fail() {
    if (!failed_) failed_at_ = base_ + static_cast<size_t>(p_ - begin_);
    p_ = end_ = nullptr;
    failed_ = true;
    return false;
  }

  size_t base_ = 0;
  size_t failed_at_ = 0;
  const char* begin_;
  const char* p_;
  const char* end_;
  bool failed_ = false;
};

}  // namespace segd::server::wire
