#include "core/profile_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/hash/hash.h"

namespace segd::codec {

std::optional<uint64_t> DecimalCodeByTrial(double v) {
  static constexpr double kScale[] = {1.0, 10.0, 100.0, 1000.0};
  for (uint64_t e = 0; e < 4; ++e) {
    const double m = std::nearbyint(v * kScale[e]);
    if (!(std::fabs(m) < 0x1p48)) return std::nullopt;
    const uint64_t code = ZigZag(static_cast<int64_t>(m)) << 2 | e;
    if (std::bit_cast<uint64_t>(DecodeDecimal(code)) == std::bit_cast<uint64_t>(v)) {
      if (VarintLength(code) >= 8) return std::nullopt;
      return code;
    }
  }
  return std::nullopt;
}

namespace {

uint8_t* PutHead(uint8_t* p, uint32_t name_id, FieldKind kind) {
  return PutVarint(p, (static_cast<uint64_t>(name_id) << kKindBits) | static_cast<uint64_t>(kind));
}

// DecimalCodeByTrial(v), found at once for most floats.
std::optional<uint64_t> DecimalCode(double v) {
  // At once, where v * 1000 is below 2^40: for v = n / 10^e, v * 1000 is n * 10^(3-e)
  // within rounding error (under 2^-12 there), so a float that lies farther from an
  // integer (a price computed, not typed) has no code, and one that lies near the integer
  // m has, if any, the one of m with its trailing zeros taken off (fewer would give a
  // longer code; more, a value other than v). Adding and taking away 1.5 * 2^52 rounds a
  // double below 2^51 to the nearest integer, without a call to nearbyint. What fails the
  // check (0.1 + 0.2) goes to DecimalCodeByTrial.
  const double x = v * 1000.0;
  if (std::fabs(x) < 0x1p40) {
    constexpr double kRound = 0x1.8p52;
    const double nearest = (x + kRound) - kRound;
    if (std::fabs(x - nearest) > 0x1p-10) return std::nullopt;
    auto n = static_cast<int64_t>(nearest);
    uint64_t e = 3;
    for (; e > 0 && n % 10 == 0; --e) n /= 10;
    const uint64_t code = ZigZag(n) << 2 | e;
    if (std::bit_cast<uint64_t>(DecodeDecimal(code)) == std::bit_cast<uint64_t>(v)) {
      if (VarintLength(code) >= 8) return std::nullopt;
      return code;
    }
  }
  return DecimalCodeByTrial(v);
}

// REQUIRES: room for the head, a length and `s`.
uint8_t* PutString(uint8_t* p, uint32_t name_id, std::string_view s, ValueDictionary* dict) {
  if (std::optional<uint32_t> id = dict->IdFor(name_id, s)) {
    return PutVarint(PutHead(p, name_id, FieldKind::kStringInterned), *id);
  }
  p = PutVarint(PutHead(p, name_id, FieldKind::kStringInline), s.size());
  return PutBytes(p, s);
}

}  // namespace

void Buffer::Grow(size_t n) {
  const size_t capacity = std::max({size_ + n, 2 * capacity_, size_t{256}});
  auto data = std::make_unique_for_overwrite<uint8_t[]>(capacity);
  if (size_ > 0) std::memcpy(data.get(), data_.get(), size_);
  data_ = std::move(data);
  capacity_ = capacity;
}

void MoveUpForLength(size_t mark, size_t len, Buffer* out) {
  const int extra = VarintLength(len) - 1;
  uint8_t* end = out->Room(extra) + extra;
  uint8_t* section = out->data() + mark + 1;
  std::memmove(section + extra, section, len);
  PutVarint(section - 1, len);
  out->Commit(end);
}

size_t BeginBlob(std::string_view key, Buffer* out) {
  uint8_t* p = out->Room(kMaxVarintBytes + key.size());
  out->Commit(PutBytes(PutVarint(p, key.size()), key));
  return BeginLength(out);
}

size_t BeginEvent(uint64_t time_code, uint32_t type, std::string_view id, Buffer* out) {
  uint8_t* p = out->Room(3 * kMaxVarintBytes + 1 + id.size());
  p = PutVarint(p, time_code);
  p = PutVarint(p, static_cast<uint64_t>(type) << 1 | (id.empty() ? 0 : 1));
  const size_t mark = p - out->data();
  ++p;  // the body's length, set by EndLength
  if (!id.empty()) p = PutBytes(PutVarint(p, id.size()), id);
  out->Commit(p);
  return mark;
}

const uint8_t* SkipValue(FieldKind kind, const uint8_t* p) {
  uint64_t v;
  switch (kind) {
    case FieldKind::kStringInline:
      p = GetVarint(p, &v);
      return p + v;
    case FieldKind::kStringInterned:
    case FieldKind::kInt:
    case FieldKind::kDecimal:
    case FieldKind::kTime:
      return SkipVarint(p);
    case FieldKind::kFloat:
      return p + 8;
    case FieldKind::kBool:
      return p + 1;
    case FieldKind::kList: {
      uint64_t n, item;
      p = GetVarint(p, &n);
      for (uint64_t i = 0; i < n; ++i) {
        p = GetVarint(p, &item);
        if ((item & 1) == 0) p += item >> 1;
      }
      return p;
    }
  }
  return p;
}

Value FieldValue(const Field& f, const Interner& values) {
  uint64_t v;
  switch (f.kind) {
    case FieldKind::kStringInline:
    case FieldKind::kStringInterned:
      return Value::String(std::string(ScalarVal(f, values).s));
    case FieldKind::kInt:
      GetVarint(f.value, &v);
      return Value::Int(UnZigZag(v));
    case FieldKind::kTime:
      GetVarint(f.value, &v);
      return Value::Time(UnZigZag(v));
    case FieldKind::kFloat:
    case FieldKind::kDecimal:
      return Value::Float(ScalarVal(f, values).f);
    case FieldKind::kBool:
      return Value::Bool(*f.value != 0);
    case FieldKind::kList: {
      std::vector<std::string> items;
      items.reserve(ListSize(f));
      ForEachListItem(f, values, [&](std::string_view s) { items.emplace_back(s); });
      return Value::List(std::move(items));
    }
  }
  return Value();
}

bool SameValue(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  if (a.kind() == ValueKind::kFloat) {
    return std::bit_cast<uint64_t>(a.float_value()) == std::bit_cast<uint64_t>(b.float_value());
  }
  return a == b;
}

uint32_t ValueDictionary::Id1For(uint32_t name_id, std::string_view s) {
  if (s.size() < kMinInternedSize) return 0;
  if (name_id >= names_.size()) names_.resize(name_id + 1);
  NameStats& name = names_[name_id];
  if (name.skip > 0) {
    --name.skip;
    return 0;
  }
  const size_t hash = Interner::Hash(s);
  if (const std::optional<uint32_t> found = strings_.Find(s, hash)) {
    Count(name, /*repeat=*/true);
    return *found + 1;
  }
  bool repeat = false;
  const uint32_t id1 = Sight(name, name_id, s, hash, &repeat);
  Count(name, repeat);
  return id1;
}

void ValueDictionary::Count(NameStats& name, bool repeat) {
  name.repeats += repeat;
  if (++name.lookups < kSample) return;
  if (name.repeats * kMinRepeatShare < kSample) name.skip = kSkipped;
  name.lookups = name.repeats = 0;
}

uint32_t ValueDictionary::Sight(NameStats& name, uint32_t name_id, std::string_view s,
                                size_t hash, bool* repeat) {
  if (++lookups_ > 4 * seen_.size() && seen_.size() < kMaxSeen) {
    seen_.assign(std::max(kMinSeen, 2 * seen_.size()), 0);
    lookups_ = 0;
  }
  uint32_t& seen = seen_[SeenIndex(hash)];
  const uint32_t fingerprint =
      static_cast<uint32_t>(absl::HashOf(static_cast<uint64_t>(hash), name_id)) | 1;
  if (seen != fingerprint) {
    seen = fingerprint;
    return 0;
  }
  if (name.interned >= kMaxValuesPerName) return 0;
  *repeat = true;
  ++name.interned;
  seen = 0;
  return strings_.Intern(s) + 1;
}

size_t ValueDictionary::MemoryBytes() const {
  return strings_.MemoryBytes() + seen_.capacity() * sizeof(uint32_t) +
         names_.capacity() * sizeof(NameStats);
}

namespace {

// The most bytes the field (_, v) takes: a head, a length or id, the bytes of a string;
// a list's count and items.
template <typename V>
size_t MaxFieldBytes(const V& v) {
  constexpr size_t kHead = kMaxVarintBytes;
  switch (v.kind()) {
    case ValueKind::kString:
      return kHead + kMaxVarintBytes + v.string_value().size();
    case ValueKind::kList: {
      size_t n = kHead + kMaxVarintBytes;
      for (std::string_view item : v.list_value()) n += kMaxVarintBytes + item.size();
      return n;
    }
    default:
      return kHead + kMaxVarintBytes;  // a varint, or 8 bytes of float, or a bool's byte
  }
}

template <typename V>  // Value or ValueRef
void AppendFieldOf(uint32_t name_id, const V& v, ValueDictionary* dict, Buffer* out) {
  uint8_t* p = out->Room(MaxFieldBytes(v));
  switch (v.kind()) {
    case ValueKind::kString:
      p = PutString(p, name_id, v.string_value(), dict);
      break;
    case ValueKind::kInt:
      p = PutVarint(PutHead(p, name_id, FieldKind::kInt), ZigZag(v.int_value()));
      break;
    case ValueKind::kTime:
      p = PutVarint(PutHead(p, name_id, FieldKind::kTime), ZigZag(v.time_value()));
      break;
    case ValueKind::kFloat:
      if (std::optional<uint64_t> code = DecimalCode(v.float_value())) {
        p = PutVarint(PutHead(p, name_id, FieldKind::kDecimal), *code);
      } else {
        const double d = v.float_value();
        p = PutHead(p, name_id, FieldKind::kFloat);
        std::memcpy(p, &d, sizeof d);
        p += sizeof d;
      }
      break;
    case ValueKind::kBool:
      p = PutHead(p, name_id, FieldKind::kBool);
      *p++ = v.bool_value() ? 1 : 0;
      break;
    case ValueKind::kList:
      p = PutVarint(PutHead(p, name_id, FieldKind::kList), v.list_value().size());
      for (std::string_view item : v.list_value()) {
        if (std::optional<uint32_t> id = dict->IdFor(name_id, item)) {
          p = PutVarint(p, static_cast<uint64_t>(*id) << 1 | 1);
        } else {
          p = PutBytes(PutVarint(p, static_cast<uint64_t>(item.size()) << 1), item);
        }
      }
      break;
  }
  out->Commit(p);
}

}  // namespace

void AppendField(uint32_t name_id, const Value& v, ValueDictionary* dict, Buffer* out) {
  AppendFieldOf(name_id, v, dict, out);
}

void AppendField(uint32_t name_id, const ValueRef& v, ValueDictionary* dict, Buffer* out) {
  AppendFieldOf(name_id, v, dict, out);
}

}  // namespace segd::codec
