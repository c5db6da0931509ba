#pragma once

// The binary encoding of one profile ("blob"), as ProfileStore keeps it: one heap
// block per profile, read in place by ProfileStore::Load and ProfileView.
//
// Integers are LEB128 varints (7 bits per byte, low bits first); signed ones are
// zigzag-encoded first. Names (attribute, property and event type names) are ids of
// the store's name Interner; string values may be ids of the store's ValueDictionary.
//
//   blob        := varint key_len, key bytes,
//                  varint attrs_len, attrs_len bytes of field*   (sorted by name id),
//                  event*                                       (to the end of the blob)
//
//   field       := varint head (name_id << 3 | kind), value
//     kind 0 kStringInline    varint len, len bytes of UTF-8
//     kind 1 kStringInterned  varint value_id
//     kind 2 kInt             varint zigzag(v)
//     kind 3 kFloat           8 bytes, IEEE 754 binary64, little-endian
//     kind 4 kDecimal         varint (zigzag(n) << 2 | e): the float n / 10^e, e in 0..3,
//                             used when that reproduces the value bit for bit (19.99)
//     kind 5 kBool            1 byte, 0 or 1
//     kind 6 kTime            varint zigzag(ms)
//     kind 7 kList            varint count, count items of
//                               varint (value_id << 1 | 1)  interned, or
//                               varint (len << 1), len bytes  inline
//
//   event       := varint time_code, rest
//     time_code   the first event: its time (times are >= 0); every later one: its time
//                 minus the previous event's (>= 0, as events are in history order)
//     rest        := varint (type_id << 1 | has_id), varint body_len, body
//     body        := [varint id_len, id bytes]  (if has_id), field* properties
//                    (sorted by name id, scalars only)
//
// Events are in history order: by time, then arrival. Only the time code of an event
// depends on its neighbour, so inserting or dropping an event rewrites at most one
// other event's time code; `rest` moves unchanged.
//
// Blobs are written only by ProfileStore and trusted: the decoders below do no bounds
// checks.

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/interner.h"
#include "core/prefetch.h"
#include "core/profile_ref.h"
#include "core/profile_view.h"
#include "core/value.h"

// The decoders run in the evaluator's inner loops.
#define SEGD_CODEC_INLINE inline __attribute__((always_inline))

namespace segd::codec {

static_assert(std::endian::native == std::endian::little, "floats are stored little-endian");

enum class FieldKind : uint8_t {
  kStringInline = 0,
  kStringInterned = 1,
  kInt = 2,
  kFloat = 3,
  kDecimal = 4,
  kBool = 5,
  kTime = 6,
  kList = 7,
};
inline constexpr int kKindBits = 3;

// ---- Varints ----

inline constexpr size_t kMaxVarintBytes = 10;

// Writes v at p, which has room for it; returns the byte after it.
SEGD_CODEC_INLINE uint8_t* PutVarint(uint8_t* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<uint8_t>(v);
  return p;
}

inline int VarintLength(uint64_t v) {
  int n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Decodes the varint at p into *v; returns the byte after it.
SEGD_CODEC_INLINE const uint8_t* GetVarint(const uint8_t* p, uint64_t* v) {
  uint64_t b = *p++;
  if (b < 0x80) {
    *v = b;
    return p;
  }
  uint64_t r = b & 0x7f;
  int shift = 7;
  do {
    b = *p++;
    r |= (b & 0x7f) << shift;
    shift += 7;
  } while (b >= 0x80);
  *v = r;
  return p;
}

// GetVarint for a varint with at least 8 readable bytes from p up to `limit`: decodes
// varints of up to 8 bytes (56 bits) without a branch per byte.
SEGD_CODEC_INLINE const uint8_t* GetVarintFast(const uint8_t* p, const uint8_t* limit,
                                               uint64_t* v) {
  if (limit - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, sizeof w);
    const uint64_t stops = ~w & 0x8080808080808080ULL;  // the last byte has bit 7 clear
    if (stops != 0) {
      const int bits = std::countr_zero(stops) + 1;  // through the last byte's bit 7
      uint64_t x = bits == 64 ? w : w & ((uint64_t{1} << bits) - 1);
      x = ((x & 0x7f007f007f007f00ULL) >> 1) | (x & 0x007f007f007f007fULL);
      x = ((x & 0x3fff00003fff0000ULL) >> 2) | (x & 0x00003fff00003fffULL);
      x = ((x & 0x0fffffff00000000ULL) >> 4) | (x & 0x000000000fffffffULL);
      *v = x;
      return p + bits / 8;
    }
  }
  return GetVarint(p, v);
}

SEGD_CODEC_INLINE const uint8_t* SkipVarint(const uint8_t* p) {
  while (*p++ >= 0x80) {
  }
  return p;
}

// SkipVarint without a branch per byte when 8 bytes from p are readable (up to `limit`),
// as GetVarintFast.
SEGD_CODEC_INLINE const uint8_t* SkipVarintFast(const uint8_t* p, const uint8_t* limit) {
  if (limit - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, sizeof w);
    const uint64_t stops = ~w & 0x8080808080808080ULL;  // the last byte has bit 7 clear
    if (stops != 0) return p + (std::countr_zero(stops) + 1) / 8;
  }
  return SkipVarint(p);
}

inline uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// ---- Writing ----

// The bytes the encoders below append to, written through a pointer: Room(n) makes sure
// n more bytes fit (the one capacity check) and says where they go, Commit(end) takes
// the bytes written up to `end`. Unlike a std::string's, the room is not zeroed first.
// Cleared and reused: the store keeps one for each kind of encoding.
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  SEGD_CODEC_INLINE uint8_t* Room(size_t n) {
    if (capacity_ - size_ < n) Grow(n);
    return data_.get() + size_;
  }
  SEGD_CODEC_INLINE void Commit(uint8_t* end) { size_ = end - data_.get(); }
  void Clear() { size_ = 0; }

  uint8_t* data() { return data_.get(); }
  size_t size() const { return size_; }
  std::string_view view() const {
    return std::string_view(reinterpret_cast<const char*>(data_.get()), size_);
  }

 private:
  void Grow(size_t n);

  std::unique_ptr<uint8_t[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// Writes `bytes` at p, which has room for them; returns the byte after them.
inline uint8_t* PutBytes(uint8_t* p, std::string_view bytes) {
  std::memcpy(p, bytes.data(), bytes.size());
  return p + bytes.size();
}

inline void PutVarint(Buffer* out, uint64_t v) {
  out->Commit(PutVarint(out->Room(kMaxVarintBytes), v));
}
inline void PutBytes(Buffer* out, std::string_view bytes) {
  out->Commit(PutBytes(out->Room(bytes.size()), bytes));
}

// A length-prefixed section (a blob's attributes, an event's body) whose length is known
// only once it is written: BeginLength makes room for a one-byte length and returns its
// offset; EndLength writes the length of what was appended since, moving it up if the
// length takes more than a byte (a section of 128 bytes or more: rare).
inline size_t BeginLength(Buffer* out) {
  const size_t mark = out->size();
  out->Commit(out->Room(1) + 1);
  return mark;
}
// EndLength for a section of 128 bytes or more.
void MoveUpForLength(size_t mark, size_t len, Buffer* out);
inline void EndLength(size_t mark, Buffer* out) {
  const size_t len = out->size() - (mark + 1);
  if (len >= 0x80) return MoveUpForLength(mark, len, out);
  out->data()[mark] = static_cast<uint8_t>(len);
}

// ---- Blob ----

struct BlobLayout {
  std::string_view key;
  const uint8_t* attrs;      // first attribute field
  const uint8_t* attrs_len;  // the attrs_len varint
  const uint8_t* events;     // first event (== end if none)
  const uint8_t* end;
};

SEGD_CODEC_INLINE BlobLayout ParseBlob(const uint8_t* data, size_t size) {
  BlobLayout b;
  uint64_t len;
  const uint8_t* p = GetVarint(data, &len);
  b.key = std::string_view(reinterpret_cast<const char*>(p), len);
  b.attrs_len = p + len;
  p = GetVarint(b.attrs_len, &len);
  b.attrs = p;
  b.events = p + len;
  b.end = data + size;
  return b;
}

inline std::string_view KeyOfBlob(const uint8_t* data) {
  uint64_t len;
  const uint8_t* p = GetVarint(data, &len);
  return std::string_view(reinterpret_cast<const char*>(p), len);
}

// Starts a blob: its key, then the attribute section, whose fields the caller appends
// before EndLength(returned mark).
size_t BeginBlob(std::string_view key, Buffer* out);

// ---- Fields ----

struct Field {
  uint32_t name = 0;
  FieldKind kind = FieldKind::kInt;
  const uint8_t* begin = nullptr;  // the head varint
  const uint8_t* value = nullptr;  // the value's bytes
  const uint8_t* end = nullptr;    // past the field
};

const uint8_t* SkipValue(FieldKind kind, const uint8_t* p);

// Decodes the field at p; returns its end.
SEGD_CODEC_INLINE const uint8_t* NextField(const uint8_t* p, Field* f) {
  uint64_t head;
  f->begin = p;
  p = GetVarint(p, &head);
  f->name = static_cast<uint32_t>(head >> kKindBits);
  f->kind = static_cast<FieldKind>(head & ((1u << kKindBits) - 1));
  f->value = p;
  switch (f->kind) {
    case FieldKind::kStringInterned:
    case FieldKind::kInt:
    case FieldKind::kDecimal:
    case FieldKind::kTime:
      f->end = SkipVarint(p);
      break;
    case FieldKind::kBool:
      f->end = p + 1;
      break;
    case FieldKind::kFloat:
      f->end = p + 8;
      break;
    default:
      f->end = SkipValue(f->kind, p);
  }
  return f->end;
}

inline double LoadDouble(const uint8_t* p) {
  double d;
  std::memcpy(&d, p, sizeof d);
  return d;
}

inline double DecodeDecimal(uint64_t code) {
  static constexpr double kScale[] = {1.0, 10.0, 100.0, 1000.0};
  return static_cast<double>(UnZigZag(code >> 2)) / kScale[code & 3];
}

// The kDecimal code of v by trying each e in 0..3 in turn: the first n / 10^e that gives v
// back bit for bit, if its code is shorter than the 8 bytes of a raw double. What the
// encoder finds at once for most floats, and its fallback.
std::optional<uint64_t> DecimalCodeByTrial(double v);

// Sets *v to the value of a scalar field as the evaluator sees it (a time is an int).
// REQUIRES: *v is Missing (default-constructed), f.kind != kList (list items need
// storage; see ProfileStore::Load). Writes the members one by one rather than copying
// a whole Val, which keeps the decoding loop free of store-forwarding stalls.
SEGD_CODEC_INLINE void DecodeScalar(const Field& f, const Interner& values, Val* v) {
  uint64_t x;
  switch (f.kind) {
    case FieldKind::kStringInline: {
      const uint8_t* p = GetVarint(f.value, &x);
      v->kind = ValKind::kString;
      v->interned = false;
      v->s = std::string_view(reinterpret_cast<const char*>(p), x);
      return;
    }
    case FieldKind::kStringInterned:
      GetVarint(f.value, &x);
      v->kind = ValKind::kString;
      v->interned = true;
      v->value_id = static_cast<uint32_t>(x);
      v->s = values.Get(static_cast<uint32_t>(x));
      return;
    case FieldKind::kInt:
    case FieldKind::kTime:
      GetVarint(f.value, &x);
      v->kind = ValKind::kInt;
      v->i = UnZigZag(x);
      return;
    case FieldKind::kFloat:
      v->kind = ValKind::kFloat;
      v->f = LoadDouble(f.value);
      return;
    case FieldKind::kDecimal:
      GetVarint(f.value, &x);
      v->kind = ValKind::kFloat;
      v->f = DecodeDecimal(x);
      return;
    case FieldKind::kBool:
      v->kind = ValKind::kBool;
      v->b = *f.value != 0;
      return;
    case FieldKind::kList:
      return;
  }
}

// The value of a scalar field as the evaluator sees it; Missing for a list.
inline Val ScalarVal(const Field& f, const Interner& values) {
  Val v;
  DecodeScalar(f, values, &v);
  return v;
}

// Calls fn(std::string_view item) for each item of a kList field, in order.
template <typename Fn>
void ForEachListItem(const Field& f, const Interner& values, Fn&& fn) {
  uint64_t n, item;
  const uint8_t* p = GetVarint(f.value, &n);
  for (uint64_t i = 0; i < n; ++i) {
    p = GetVarint(p, &item);
    if (item & 1) {
      fn(values.Get(static_cast<uint32_t>(item >> 1)));
    } else {
      fn(std::string_view(reinterpret_cast<const char*>(p), item >> 1));
      p += item >> 1;
    }
  }
}

inline uint32_t ListSize(const Field& f) {
  uint64_t n;
  GetVarint(f.value, &n);
  return static_cast<uint32_t>(n);
}

// The field as an owned Value, with its stored kind (a time stays a time).
Value FieldValue(const Field& f, const Interner& values);

// Whether two values are the same for a client: same kind, same value (floats bit
// for bit, so 0.0 and -0.0 differ).
bool SameValue(const Value& a, const Value& b);

// ---- String values ----

// The store's table of interned string values. A value is interned (stored by id)
// once it has been seen twice under the same name, while that name has fewer than
// kMaxValuesPerName interned values: low- and mid-cardinality values (country, plan,
// urls) become small ids, values seen once (emails, order ids) stay inline and cost
// the table nothing. "Seen" is remembered in a direct-mapped table of fingerprints
// that grows with use, so a forgotten sighting only delays interning.
// A name whose values hardly ever repeat (fewer than 1 in kMinRepeatShare of a sample of
// kSample lookups found in the table or seen before) has its next kSkipped values stored
// inline without a lookup, each of which was a miss in both tables; then it is sampled
// again, so a name whose values start to repeat is interned again.
// Ids are never reused, so the views of Get() live as long as the dictionary.
class ValueDictionary {
 public:
  static constexpr uint32_t kMaxValuesPerName = 1 << 16;
  static constexpr uint32_t kSample = 1024;
  static constexpr uint32_t kMinRepeatShare = 64;
  static constexpr uint32_t kSkipped = 15 * kSample;

  ValueDictionary() = default;
  ValueDictionary(const ValueDictionary&) = delete;
  ValueDictionary& operator=(const ValueDictionary&) = delete;

  // The id to store `s` by under name `name_id`, interning it if the policy allows;
  // nullopt: store it inline.
  std::optional<uint32_t> IdFor(uint32_t name_id, std::string_view s) {
    const uint32_t id1 = Id1For(name_id, s);
    if (id1 == 0) return std::nullopt;
    return id1 - 1;
  }
  // Starts loading what IdFor(_, s) will look up first: the table.
  void Prefetch(std::string_view s) const {
    if (s.size() >= kMinInternedSize) strings_.Prefetch(Interner::Hash(s));
  }
  // The same, and the sighting IdFor(_, s) checks if `s` is not in the table: worth
  // loading where many values are seen once (a replayed profile's).
  void PrefetchWithSighting(std::string_view s) const {
    if (s.size() < kMinInternedSize) return;
    const size_t hash = Interner::Hash(s);
    strings_.Prefetch(hash);
    if (!seen_.empty()) PrefetchLine(&seen_[SeenIndex(hash)]);
  }

  const Interner& strings() const { return strings_; }
  size_t MemoryBytes() const;

 private:
  static constexpr size_t kMinInternedSize = 2;  // shorter is as short inline as by id
  static constexpr size_t kMinSeen = 1 << 12;
  // A sighting's slot depends on the value alone (so that Prefetch can find it without
  // the name's id); its fingerprint on the name too.
  size_t SeenIndex(size_t hash) const { return hash & (seen_.size() - 1); }
  static constexpr size_t kMaxSeen = 1 << 20;

  // What IdFor saw of one name's values.
  struct NameStats {
    uint32_t interned = 0;  // values interned under the name
    uint32_t lookups = 0;   // in the current sample
    uint32_t repeats = 0;   // of them, found in the table or seen before (under the cap)
    uint32_t skip = 0;      // values to store inline, unlooked, before the next sample
  };
  // Counts a lookup of a value of `name` in its sample, and starts skipping at the sample's
  // end if too few repeated.
  static void Count(NameStats& name, bool repeat);
  // IdFor's id + 1, or 0 for nullopt (Interner::FindId1 says why).
  uint32_t Id1For(uint32_t name_id, std::string_view s);
  // Interns `s` (not in the table) on its second sighting under `name`, if under the cap;
  // its id + 1, or 0.
  uint32_t Sight(NameStats& name, uint32_t name_id, std::string_view s, size_t hash,
                 bool* repeat);

  Interner strings_;
  std::vector<NameStats> names_;  // by name id
  std::vector<uint32_t> seen_;  // fingerprints of (name, value) seen once, by hash
  uint64_t lookups_ = 0;        // since seen_ last grew
};

// Appends the field (name_id, v). String values and list items go through `dict`.
void AppendField(uint32_t name_id, const Value& v, ValueDictionary* dict, Buffer* out);
void AppendField(uint32_t name_id, const ValueRef& v, ValueDictionary* dict, Buffer* out);

// ---- Events ----

struct EventHead {
  int64_t time = 0;
  uint32_t type = 0;
  bool has_id = false;
  const uint8_t* rest = nullptr;  // past the time code
  const uint8_t* body = nullptr;  // [id], properties
  const uint8_t* end = nullptr;   // past the event
};

// Decodes the event at p, which ends at or before `limit` (the blob's end).
// `prev_time` is the previous event's time, or -1 at the first event of a blob.
// Returns the event's end.
SEGD_CODEC_INLINE const uint8_t* NextEvent(const uint8_t* p, const uint8_t* limit,
                                           int64_t prev_time, EventHead* e) {
  uint64_t v;
  p = GetVarintFast(p, limit, &v);
  e->time = prev_time < 0 ? static_cast<int64_t>(v) : prev_time + static_cast<int64_t>(v);
  e->rest = p;
  p = GetVarint(p, &v);
  e->type = static_cast<uint32_t>(v >> 1);
  e->has_id = v & 1;
  p = GetVarint(p, &v);
  e->body = p;
  e->end = p + v;
  return e->end;
}

// NextEvent for a scan that needs the event's type but not its time: the time code is
// skipped, not decoded.
SEGD_CODEC_INLINE const uint8_t* NextEventType(const uint8_t* p, const uint8_t* limit,
                                               uint32_t* type) {
  uint64_t v;
  p = SkipVarintFast(p, limit);
  p = GetVarint(p, &v);
  *type = static_cast<uint32_t>(v >> 1);
  p = GetVarint(p, &v);
  return p + v;
}

// The id ("" if none) and the encoded properties of an event.
inline std::string_view EventId(const EventHead& e) {
  if (!e.has_id) return {};
  uint64_t len;
  const uint8_t* p = GetVarint(e.body, &len);
  return std::string_view(reinterpret_cast<const char*>(p), len);
}
SEGD_CODEC_INLINE const uint8_t* EventProps(const EventHead& e) {
  if (!e.has_id) return e.body;
  uint64_t len;
  const uint8_t* p = GetVarint(e.body, &len);
  return p + len;
}

// Starts an event: its time code, type and id; the caller appends its properties before
// EndLength(returned mark).
size_t BeginEvent(uint64_t time_code, uint32_t type, std::string_view id, Buffer* out);

// The property `name_id` of an event's encoded properties, or Missing.
inline Val FindProp(const uint8_t* p, const uint8_t* end, uint32_t name_id,
                    const Interner& values) {
  Field f;
  while (p < end) {
    p = NextField(p, &f);
    if (f.name == name_id) return ScalarVal(f, values);
    if (f.name > name_id) break;  // sorted by name id
  }
  return Val::Missing();
}

}  // namespace segd::codec
