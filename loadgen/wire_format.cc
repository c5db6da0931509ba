#include "loadgen/wire_format.h"

#include <google/protobuf/io/coded_stream.h>

#include <bit>
#include <cassert>
#include <cstring>

// Sizes are computed before anything is written, so that every nested message's length
// prefix is written once, in front of it, with no back-patching, and a profile is
// written into bytes reserved for it at once. All field numbers of
// segd.v1 are below 16, so every tag is one byte.
//
// Proto3 omits scalar fields that hold their default (empty string, 0) — except members of
// a oneof, which are written whenever set: an int Value of 0 is `10 00`.
namespace segd::load::wire {
namespace {

using google::protobuf::io::CodedOutputStream;

// segd.v1 field numbers (see proto/segd/v1/segd.proto).
constexpr uint32_t kValueString = 1, kValueInt = 2, kValueFloat = 3, kValueBool = 4, kValueTime = 5,
                   kValueList = 6;
constexpr uint32_t kStringListValues = 1;
constexpr uint32_t kEventType = 1, kEventTime = 2, kEventProperties = 3, kEventId = 4;
constexpr uint32_t kProfileKey = 1, kProfileAttributes = 2, kProfileEvents = 3;
constexpr uint32_t kMapEntryKey = 1, kMapEntryValue = 2;

// The size of a length-delimited field holding `n` bytes, tag included.
size_t FieldSize(size_t n) { return 1 + VarintSize(n) + n; }

size_t ValueSize(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kString:
      return FieldSize(v.string_value().size());
    case ValueKind::kInt:
      return 1 + VarintSize(static_cast<uint64_t>(v.int_value()));
    case ValueKind::kFloat:
      return 1 + 8;
    case ValueKind::kBool:
      return 1 + 1;
    case ValueKind::kTime:
      return 1 + VarintSize(static_cast<uint64_t>(v.time_value()));
    case ValueKind::kList: {
      size_t list = 0;
      for (const std::string& s : v.list_value()) list += FieldSize(s.size());
      return FieldSize(list);
    }
  }
  return 0;
}

// Writes the encoding of a message whose size was computed first into the bytes
// reserved for it: no growth checks or appends per field, which cost more than the
// encoding itself when every preloaded profile goes through here.
class ArrayWriter {
 public:
  explicit ArrayWriter(char* p) : p_(reinterpret_cast<uint8_t*>(p)) {}
  const char* position() const { return reinterpret_cast<const char*>(p_); }

  void Varint(uint64_t v) { p_ = CodedOutputStream::WriteVarint64ToArray(v, p_); }
  void Tag(uint32_t field, WireType type) {
    Varint(uint64_t{field} << 3 | static_cast<uint64_t>(type));
  }
  void Bytes(uint32_t field, std::string_view bytes) {
    Tag(field, WireType::kLengthDelimited);
    Varint(bytes.size());
    std::memcpy(p_, bytes.data(), bytes.size());
    p_ += bytes.size();
  }
  void VarintField(uint32_t field, uint64_t v) {
    Tag(field, WireType::kVarint);
    Varint(v);
  }
  void Fixed64(uint64_t bits) { p_ = CodedOutputStream::WriteLittleEndian64ToArray(bits, p_); }

 private:
  uint8_t* p_;
};

void WriteValue(const Value& v, ArrayWriter& w) {
  switch (v.kind()) {
    case ValueKind::kString:
      w.Bytes(kValueString, v.string_value());
      return;
    case ValueKind::kInt:
      w.VarintField(kValueInt, static_cast<uint64_t>(v.int_value()));
      return;
    case ValueKind::kFloat:
      w.Tag(kValueFloat, WireType::kFixed64);
      w.Fixed64(std::bit_cast<uint64_t>(v.float_value()));
      return;
    case ValueKind::kBool:
      w.VarintField(kValueBool, v.bool_value() ? 1 : 0);
      return;
    case ValueKind::kTime:
      w.VarintField(kValueTime, static_cast<uint64_t>(v.time_value()));
      return;
    case ValueKind::kList: {
      size_t list = 0;
      for (const std::string& s : v.list_value()) list += FieldSize(s.size());
      w.Tag(kValueList, WireType::kLengthDelimited);
      w.Varint(list);
      for (const std::string& s : v.list_value()) w.Bytes(kStringListValues, s);
      return;
    }
  }
}

// A map<string, Value> entry's message (without its own tag and length).
size_t EntrySize(const std::string& name, const Value& v) {
  return FieldSize(name.size()) + FieldSize(ValueSize(v));
}

void WriteEntries(uint32_t field, const NamedValues& values, ArrayWriter& w) {
  for (const auto& [name, v] : values) {
    w.Tag(field, WireType::kLengthDelimited);
    w.Varint(EntrySize(name, v));
    w.Bytes(kMapEntryKey, name);
    w.Tag(kMapEntryValue, WireType::kLengthDelimited);
    w.Varint(ValueSize(v));
    WriteValue(v, w);
  }
}

size_t EntriesSize(const NamedValues& values) {
  size_t n = 0;
  for (const auto& [name, v] : values) n += FieldSize(EntrySize(name, v));
  return n;
}

size_t EventSize(const Event& e) {
  size_t n = 0;
  if (!e.type.empty()) n += FieldSize(e.type.size());
  if (e.time != 0) n += 1 + VarintSize(static_cast<uint64_t>(e.time));
  n += EntriesSize(e.properties);
  if (!e.id.empty()) n += FieldSize(e.id.size());
  return n;
}

void WriteEvent(const Event& e, ArrayWriter& w) {
  if (!e.type.empty()) w.Bytes(kEventType, e.type);
  if (e.time != 0) w.VarintField(kEventTime, static_cast<uint64_t>(e.time));
  WriteEntries(kEventProperties, e.properties, w);
  if (!e.id.empty()) w.Bytes(kEventId, e.id);
}

// The profile's message fields, into the ProfileSize(profile) bytes at w.
void WriteProfile(const ProfileData& profile, ArrayWriter& w) {
  if (!profile.key.empty()) w.Bytes(kProfileKey, profile.key);
  WriteEntries(kProfileAttributes, profile.attributes, w);
  for (const Event& e : profile.events) {
    w.Tag(kProfileEvents, WireType::kLengthDelimited);
    w.Varint(EventSize(e));
    WriteEvent(e, w);
  }
}

// Grows `out` by `n` bytes and returns a writer at the first of them.
ArrayWriter Extend(size_t n, std::string* out) {
  const size_t at = out->size();
  out->resize(at + n);
  return ArrayWriter(out->data() + at);
}

}  // namespace

size_t ProfileSize(const ProfileData& profile) {
  size_t n = 0;
  if (!profile.key.empty()) n += FieldSize(profile.key.size());
  n += EntriesSize(profile.attributes);
  for (const Event& e : profile.events) n += FieldSize(EventSize(e));
  return n;
}

void AppendProfile(const ProfileData& profile, std::string* out) {
  ArrayWriter w = Extend(ProfileSize(profile), out);
  WriteProfile(profile, w);
  assert(w.position() == out->data() + out->size());
}

void AppendReplayProfile(const ProfileData& profile, std::string* out) {
  const size_t size = ProfileSize(profile);
  ArrayWriter w = Extend(FieldSize(size), out);
  w.Tag(kReplayRequestProfiles, WireType::kLengthDelimited);
  w.Varint(size);
  WriteProfile(profile, w);
  assert(w.position() == out->data() + out->size());
}

void AppendKeyedUpdate(std::string_view key, std::string_view body, std::string* out) {
  AppendTag(kUpdateBatchUpdates, WireType::kLengthDelimited, out);
  AppendVarint(FieldSize(key.size()) + body.size(), out);
  AppendBytesField(kProfileUpdateKey, key, out);
  out->append(body);
}

}  // namespace segd::load::wire
