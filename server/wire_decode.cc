#include "server/wire_decode.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "core/profile_ref.h"
#include "core/text.h"
#include "segd/v1/segd.pb.h"
#include "server/wire_reader.h"

namespace segd::server {
namespace {

using wire::DecodeVarint;
using wire::Reader;
using wire::WireType;

// A field's tag as on the wire: its number and wire type.
constexpr uint32_t Tag(int field, WireType type) {
  return static_cast<uint32_t>(field) << 3 | static_cast<uint32_t>(type);
}
constexpr WireType kVarint = WireType::kVarint;
constexpr WireType kFixed64 = WireType::kFixed64;
constexpr WireType kBytes = WireType::kLengthDelimited;

// Map entries (the generated MapEntry messages number their fields 1 and 2).
constexpr uint32_t kEntryKey = Tag(1, kBytes);
constexpr uint32_t kEntryValue = Tag(2, kBytes);

// A map being decoded (attributes, set, increment, an event's properties): its entries
// as they came, from `first` on, and the indexes of those whose value has no kind, which
// are rare (such a value rejects its profile or update). The entries before `first` are
// earlier maps': an item's events read their properties one after another into one Map.
using Entries = std::vector<NamedValueRef>;
struct Map {
  Entries entries;
  size_t first = 0;
  absl::InlinedVector<uint32_t, 2> kindless;

  void clear() {
    entries.clear();
    first = 0;
    kindless.clear();
  }
  // Starts the next map after the entries read so far.
  void StartNext() {
    first = entries.size();
    kindless.clear();
  }
};

// Whether each entry has a kind (1) or not (0), while a map with kindless entries is
// finished.
using Kinds = std::vector<uint8_t>;

// Sorts the n entries at `v` (and `k` alike, if given) by name, stably.
void SortByName(NamedValueRef* v, size_t n, Kinds* k) {
  // Most maps are a handful of properties or attributes: an insertion sort in place,
  // which allocates nothing. A large map (a client may send thousands of entries) is
  // sorted by index, in n log n.
  constexpr size_t kInsertionSortMax = 16;
  if (n <= kInsertionSortMax) {
    for (size_t i = 1; i < n; ++i) {
      for (size_t j = i; j > 0 && StringLess(v[j].first, v[j - 1].first); --j) {
        std::swap(v[j], v[j - 1]);
        if (k != nullptr) std::swap((*k)[j], (*k)[j - 1]);
      }
    }
    return;
  }
  std::vector<uint32_t> order(n);
  for (uint32_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return StringLess(v[a].first, v[b].first); });
  Entries sorted;
  Kinds sorted_kinds;
  sorted.reserve(n);
  for (uint32_t i : order) {
    sorted.push_back(v[i]);
    if (k != nullptr) sorted_kinds.push_back((*k)[i]);
  }
  std::copy(sorted.begin(), sorted.end(), v);
  if (k != nullptr) *k = std::move(sorted_kinds);
}

// -1, 0 or 1 as name a goes before, is the same as or goes after name b, in StringLess's
// order. Two names of a map mostly differ in their first byte, which settles it without
// the two comparisons.
int CompareNames(std::string_view a, std::string_view b) {
  if (!a.empty() && !b.empty() && a[0] != b[0]) {
    return static_cast<uint8_t>(a[0]) < static_cast<uint8_t>(b[0]) ? -1 : 1;
  }
  if (StringLess(a, b)) return -1;
  return StringLess(b, a) ? 1 : 0;
}

// Makes the map's entries (from map->first on) what the map holds, as ConvertNamedValues
// would have it: sorted by name, the last entry of each name kept. Returns the name of the
// first value without a kind, if any.
std::optional<std::string> FinishMap(Map* map) {
  NamedValueRef* const v = map->entries.data() + map->first;
  const size_t n = map->entries.size() - map->first;
  if (n <= 2 && map->kindless.empty()) {  // most events' properties: in order at once
    const int order = n == 2 ? CompareNames(v[0].first, v[1].first) : -1;
    if (order > 0) {
      std::swap(v[0], v[1]);
    } else if (order == 0) {  // the same name twice: keep the later
      v[0] = v[1];
      map->entries.pop_back();
    }
    return std::nullopt;
  }
  bool unique = true;  // and sorted
  for (size_t i = 1; i < n && unique; ++i) unique = StringLess(v[i - 1].first, v[i].first);
  if (unique && map->kindless.empty()) return std::nullopt;
  Kinds kinds;
  Kinds* k = nullptr;
  if (!map->kindless.empty()) {
    kinds.assign(n, 1);
    for (uint32_t i : map->kindless) kinds[i - map->first] = 0;
    k = &kinds;
  }
  if (!unique) {
    SortByName(v, n, k);
    // Equal names are adjacent, in the order they came: keep the last.
    size_t out = 0;
    for (size_t i = 0; i < n; ++i) {
      if (i + 1 < n && SameString(v[i + 1].first, v[i].first)) continue;
      if (out != i) {
        v[out] = v[i];
        if (k != nullptr) kinds[out] = kinds[i];
      }
      ++out;
    }
    map->entries.resize(map->first + out);
    if (k != nullptr) kinds.resize(out);
  }
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (!kinds[i]) return std::string(v[i].first);
  }
  return std::nullopt;
}

// The first byte of `bytes`, as a byte.
inline const uint8_t* BytesOf(std::string_view bytes) {
  return reinterpret_cast<const uint8_t*>(bytes.data());
}

// The bytes of the length-delimited field `tag` if it comes next at *p, before `end`, with
// a one-byte length; then *p is past it.
inline bool NextShortField(const uint8_t** p, const uint8_t* end, uint32_t tag,
                           std::string_view* bytes) {
  const uint8_t* q = *p;
  if (end - q < 2 || q[0] != tag || q[1] >= 0x80 || end - q - 2 < q[1]) return false;
  *bytes = std::string_view(reinterpret_cast<const char*>(q + 2), q[1]);
  *p = q + 2 + q[1];
  return true;
}

// Reads `entry`, the bytes of a map<string, Value> entry, into `name` and `value` if it
// has the shape protobuf's serializers give one: the key and then the value, each once
// and with a one-byte length, the value holding one member of its oneof other than a
// list. Anything else (and a value without a kind) returns false, having set nothing, for
// the general reading, which gives the same result for an entry of this shape. The
// standard profile's 49 entries all have it; reading them field by field was a third of
// the decoder's instructions.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool ReadCommonEntry(std::string_view entry,
                                                         std::string_view* name, ValueRef* value) {
  const uint8_t* p = BytesOf(entry);
  const uint8_t* const end = p + entry.size();
  std::string_view key, member;
  if (!NextShortField(&p, end, kEntryKey, &key) || !NextShortField(&p, end, kEntryValue, &member) ||
      p != end) {
    return false;
  }
  // The Value's one member, which must span it.
  const uint8_t* f = BytesOf(member);
  const uint8_t* const member_end = f + member.size();
  if (f == member_end) return false;
  uint64_t n;
  switch (*f) {
    case Tag(v1::Value::kStringValueFieldNumber, kBytes): {
      std::string_view s;
      if (!NextShortField(&f, member_end, *f, &s) || f != member_end) return false;
      *value = ValueRef::String(s);
      break;
    }
    case Tag(v1::Value::kFloatValueFieldNumber, kFixed64): {
      if (member_end - f != 9) return false;
      uint64_t bits = 0;
      for (int i = 8; i >= 1; --i) bits = bits << 8 | f[i];  // little-endian on the wire
      double d;
      std::memcpy(&d, &bits, sizeof d);
      *value = ValueRef::Float(d);
      break;
    }
    case Tag(v1::Value::kIntValueFieldNumber, kVarint):
      if (DecodeVarint(f + 1, member_end, &n) != member_end) return false;
      *value = ValueRef::Int(static_cast<int64_t>(n));
      break;
    case Tag(v1::Value::kBoolValueFieldNumber, kVarint):
      if (DecodeVarint(f + 1, member_end, &n) != member_end) return false;
      *value = ValueRef::Bool(n != 0);
      break;
    case Tag(v1::Value::kTimeValueFieldNumber, kVarint):
      if (DecodeVarint(f + 1, member_end, &n) != member_end) return false;
      *value = ValueRef::Time(static_cast<int64_t>(n));
      break;
    default:
      return false;
  }
  *name = key;
  return true;
}

// A reader of one request's bytes. Every Read* returns false on malformed input, and the
// whole request is then rejected.
//
// The readers of nested messages are forced inline: each field of a replayed profile
// went through a few calls (ReadFields, the field's lambda, ReadMessage, ReadTag), and
// inlining them made a replayed profile's decode ~1.3 µs cheaper (segd CPU per profile
// 8.4-9.0 -> 7.5-7.8 µs, three alternating pairs).
class Decoder {
 public:
  // `arena` holds what the decoded refs point to besides the bytes.
  Decoder(std::string_view bytes, RequestArena* arena) : top_(bytes), r_(&top_), arena_(arena) {}

  // Reads fields up to the end of the message (the whole input, or the length-delimited
  // message at the current position when `nested`), calling on_field(tag) for each;
  // on_field reads the field's value, calling Skip(tag) for the fields it does not know.
  template <typename OnField>
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool ReadMessage(bool nested, const OnField& on_field) {
    if (!nested) return ReadFields(on_field);
    std::string_view bytes;
    if (!r_->ReadLengthDelimited(&bytes)) return Failed();
    return ReadWithin(bytes, on_field);
  }

  bool Skip(uint32_t tag) {
    return r_->Skip(tag >> 3, static_cast<WireType>(tag & 7)) || Failed();
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool ReadString(std::string_view* s) {
    return r_->ReadLengthDelimited(s) || Failed();
  }
  bool ReadVarint(uint64_t* v) { return r_->ReadVarint(v) || Failed(); }
  bool ReadFixed64(uint64_t* v) { return r_->ReadFixed64(v) || Failed(); }

  // A Value message, merged into `v` as protobuf merges: the last member of the oneof
  // wins, and a second list_value appends to the first.
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool ReadValue(ValueRef* v, bool* has_kind) {
    return ReadMessage(true, [&](uint32_t tag) {
      uint64_t n;
      switch (tag) {
        case Tag(v1::Value::kStringValueFieldNumber, kBytes): {
          std::string_view bytes;
          if (!r_->ReadLengthDelimited(&bytes)) return Failed();
          *v = ValueRef::String(bytes);
          break;
        }
        case Tag(v1::Value::kIntValueFieldNumber, kVarint):
          if (!ReadVarint(&n)) return false;
          *v = ValueRef::Int(static_cast<int64_t>(n));
          break;
        case Tag(v1::Value::kFloatValueFieldNumber, kFixed64): {
          if (!ReadFixed64(&n)) return false;
          double f;
          std::memcpy(&f, &n, sizeof f);
          *v = ValueRef::Float(f);
          break;
        }
        case Tag(v1::Value::kBoolValueFieldNumber, kVarint):
          if (!ReadVarint(&n)) return false;
          *v = ValueRef::Bool(n != 0);
          break;
        case Tag(v1::Value::kTimeValueFieldNumber, kVarint):
          if (!ReadVarint(&n)) return false;
          *v = ValueRef::Time(static_cast<int64_t>(n));
          break;
        case Tag(v1::Value::kListValueFieldNumber, kBytes):
          if (!ReadList(v, *has_kind && v->kind() == ValueKind::kList)) return false;
          break;
        default:
          return Skip(tag);
      }
      *has_kind = true;
      return true;
    });
  }

  // One entry of a map<string, Value>, appended to `map` as it came.
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool ReadEntry(Map* map) {
    auto& [name, value] = map->entries.emplace_back();
    std::string_view entry;
    if (!r_->ReadLengthDelimited(&entry)) return Failed();
    if (ReadCommonEntry(entry, &name, &value)) return true;
    bool has_kind = false;
    const bool ok = ReadWithin(entry, [&](uint32_t tag) {
      if (tag == kEntryKey) return ReadString(&name);
      if (tag == kEntryValue) return ReadValue(&value, &has_kind);
      return Skip(tag);
    });
    if (!has_kind) map->kindless.push_back(static_cast<uint32_t>(map->entries.size() - 1));
    return ok;
  }

  // An event, appended to `events` with its properties finished (FinishMap), for
  // KeepEvents. The first property without a kind, if `error` has no message yet, becomes
  // its message.
  bool ReadEvent(std::vector<EventRef>* events, std::optional<std::string>* error) {
    const size_t index = events->size();
    EventRef& e = events->emplace_back();
    properties_.StartNext();
    std::string_view bytes;
    if (!r_->ReadLengthDelimited(&bytes)) return Failed();
    if (!ReadCommonEvent(bytes, &e) && !ReadEventFields(bytes, &e)) return false;
    std::optional<std::string> bad = FinishMap(&properties_);
    if (bad && !error->has_value()) {
      *error = ValueWithoutKind(absl::StrCat("events[", index, "].properties"), *bad);
    }
    property_ranges_.emplace_back(properties_.first,
                                  properties_.entries.size() - properties_.first);
    return true;
  }

  // Reads the fields of `bytes`, an Event, into `e` and properties_, one by one.
  bool ReadEventFields(std::string_view bytes, EventRef* e) {
    return ReadWithin(bytes, [&](uint32_t tag) {
      uint64_t n;
      switch (tag) {
        case Tag(v1::Event::kTypeFieldNumber, kBytes):
          return ReadString(&e->type);
        case Tag(v1::Event::kTimeFieldNumber, kVarint):
          if (!ReadVarint(&n)) return false;
          e->time = static_cast<int64_t>(n);
          return true;
        case Tag(v1::Event::kPropertiesFieldNumber, kBytes):
          return ReadEntry(&properties_);
        case Tag(v1::Event::kIdFieldNumber, kBytes):
          return ReadString(&e->id);
        default:
          return Skip(tag);
      }
    });
  }

  // Reads `bytes`, an Event, into `e` and properties_ if it has the shape protobuf's
  // serializers give one: its fields in number order (type, time, properties, id), each but
  // the properties at most once, lengths of one byte, every property of the shape
  // ReadCommonEntry reads. Anything else returns false, `e` and properties_ left as they
  // were, for ReadEventFields, which gives the same result for an event of this shape.
  // Field by field, an event of the standard profile took ~400 instructions.
  bool ReadCommonEvent(std::string_view bytes, EventRef* e) {
    const uint8_t* p = BytesOf(bytes);
    const uint8_t* const end = p + bytes.size();
    EventRef out;
    NextShortField(&p, end, Tag(v1::Event::kTypeFieldNumber, kBytes), &out.type);
    if (p < end && *p == Tag(v1::Event::kTimeFieldNumber, kVarint)) {
      uint64_t n;
      p = DecodeVarint(p + 1, end, &n);
      if (p == nullptr) return false;
      out.time = static_cast<int64_t>(n);
    }
    const auto give_up = [&] {
      properties_.entries.resize(properties_.first);
      return false;
    };
    std::string_view entry;
    while (NextShortField(&p, end, Tag(v1::Event::kPropertiesFieldNumber, kBytes), &entry)) {
      auto& [name, value] = properties_.entries.emplace_back();
      if (!ReadCommonEntry(entry, &name, &value)) return give_up();
    }
    NextShortField(&p, end, Tag(v1::Event::kIdFieldNumber, kBytes), &out.id);
    if (p != end) return give_up();
    *e = out;
    return true;
  }

  // A copy of `events`, the item's as ReadEvent read them, in the arena, each pointing to
  // its properties, which are copied there in one piece (one allocation an item rather
  // than one an event).
  std::span<const EventRef> KeepEvents(std::vector<EventRef>* events) {
    const std::span<const NamedValueRef> properties = Keep(properties_.entries);
    for (size_t i = 0; i < events->size(); ++i) {
      const auto [start, count] = property_ranges_[i];
      (*events)[i].properties = properties.subspan(start, count);
    }
    return Keep(*events);
  }

  // A copy of `items` in the arena, which holds it as long as the decoded request.
  template <typename T>
  std::span<const T> Keep(const std::vector<T>& items) {
    // The arena runs no destructors.
    static_assert(std::is_trivially_copy_constructible_v<T> && std::is_trivially_destructible_v<T>);
    if (items.empty()) return {};
    const size_t bytes = items.size() * sizeof(T);
    T* out = static_cast<T*>(arena_->allocate(bytes, alignof(T)));
    std::uninitialized_copy(items.begin(), items.end(), out);
    NoteKept(reinterpret_cast<const char*>(out), bytes);
    return {out, items.size()};
  }

  // The position of the next byte to read.
  size_t offset() const { return r_->position(); }
  // Starts an item (a profile or an update) for kept_memory().
  void StartItem() {
    kept_begin_ = kept_end_ = nullptr;
    properties_.clear();
    property_ranges_.clear();
  }
  // What Keep copied to the arena since StartItem, if it lies in one piece (the arena
  // allocates in order within a block); else the first piece.
  std::string_view kept_memory() const {
    return std::string_view(kept_begin_, static_cast<size_t>(kept_end_ - kept_begin_));
  }

  // Where the bytes stopped being a message.
  size_t position() const { return failed_at_; }

 private:
  // A list_value: its items, after those of `v` if `append` (a second list_value).
  bool ReadList(ValueRef* v, bool append) {
    list_items_.clear();
    if (append) list_items_.assign(v->list_value().begin(), v->list_value().end());
    const bool ok = ReadMessage(true, [&](uint32_t tag) {
      if (tag != Tag(v1::StringList::kValuesFieldNumber, kBytes)) return Skip(tag);
      return ReadString(&list_items_.emplace_back());
    });
    if (!ok) return false;
    *v = ValueRef::List(Keep(list_items_));
    return true;
  }

  // Reads the fields of the nested message `bytes`, which the current reader returned.
  template <typename OnField>
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool ReadWithin(std::string_view bytes, const OnField& on_field) {
    Reader inner = r_->Nested(bytes);
    Reader* const outer = r_;
    r_ = &inner;
    const bool ok = ReadFields(on_field);
    r_ = outer;
    return ok;
  }

  template <typename OnField>
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool ReadFields(const OnField& on_field) {
    while (!r_->done()) {
      uint32_t field;
      WireType type;
      if (!r_->ReadTag(&field, &type)) return Failed();
      if (!on_field(Tag(static_cast<int>(field), type))) return false;
    }
    return true;
  }

  void NoteKept(const char* p, size_t size) {
    constexpr ptrdiff_t kMaxGap = 64;  // the arena's alignment and block headers
    if (kept_begin_ == nullptr) {
      kept_begin_ = p;
      kept_end_ = p + size;
      contiguous_ = true;
    } else if (contiguous_ && p >= kept_end_ && p - kept_end_ <= kMaxGap) {
      kept_end_ = p + size;
    } else {
      contiguous_ = false;
    }
  }

  // Records where the innermost failure happened (the first one recorded); false.
  bool Failed() {
    if (!failed_) {
      failed_ = true;
      failed_at_ = r_->position();
    }
    return false;
  }

  Reader top_;
  Reader* r_;  // the reader of the message being read
  bool failed_ = false;
  size_t failed_at_ = 0;
  RequestArena* const arena_;
  // Scratch, copied to the arena once complete, that keeps its capacity from one item to
  // the next: the properties of the item's events, one map after another, and each
  // event's start and count in them (KeepEvents); the items of the list being read.
  Map properties_;
  std::vector<std::pair<uint32_t, uint32_t>> property_ranges_;
  std::vector<std::string_view> list_items_;
  // What Keep copied since StartItem (kept_memory).
  const char* kept_begin_ = nullptr;
  const char* kept_end_ = nullptr;
  bool contiguous_ = false;
};

absl::Status Malformed(std::string_view what, size_t position) {
  return absl::InvalidArgumentError(absl::StrCat(
      "the ", AsAbsl(what), " message is not valid protobuf wire format (at byte ", position,
      ")"));
}

// The arena of one decoded request, its first block `first_block` bytes, its blocks from
// `blocks`.
std::unique_ptr<RequestArena> NewRequestArena(size_t first_block,
                                              std::pmr::memory_resource* blocks) {
  return std::make_unique<RequestArena>(first_block, blocks);
}

template <typename T>
void Add(ConvertedBatch<T>* batch, uint32_t index, T item, std::optional<std::string> error) {
  if (error) {
    batch->errors.push_back(UpdateError{index, std::string(item.key), *std::move(error)});
    return;
  }
  batch->items.push_back(std::move(item));
  batch->indexes.push_back(index);
}

}  // namespace

RecycledBlocks::~RecycledBlocks() {
  for (const Block& b : blocks_) Free(b);
}

RecycledBlocks::Block RecycledBlocks::New(size_t bytes, size_t alignment) {
  return Block{::operator new (bytes, std::align_val_t{alignment}), bytes, alignment};
}

void RecycledBlocks::Free(const Block& b) {
  ::operator delete (b.data, b.size, std::align_val_t{b.alignment});
}

void* RecycledBlocks::do_allocate(size_t bytes, size_t alignment) {
  if (next_ == blocks_.size()) {
    blocks_.push_back(New(bytes, alignment));
  } else if (Block& b = blocks_[next_]; b.size < bytes || b.alignment < alignment) {
    Free(b);  // this arena grew further than the last: replace the block
    b = New(bytes, alignment);
  }
  return blocks_[next_++].data;
}

absl::StatusOr<DecodedUpdateBatch> DecodeUpdateBatch(std::string_view bytes,
                                                     std::pmr::memory_resource* blocks) {
  DecodedUpdateBatch out;
  out.arena = NewRequestArena(16 << 10, blocks);  // an update's refs take ~150 bytes
  Decoder in(bytes, out.arena.get());
  // The update being read, before Keep copies its parts to the arena.
  Map set, increment;
  std::vector<std::string_view> unset;
  std::vector<EventRef> events;
  uint32_t index = 0;
  const bool ok = in.ReadMessage(false, [&](uint32_t tag) {
    if (tag == Tag(v1::UpdateBatch::kSeqFieldNumber, kVarint)) return in.ReadVarint(&out.seq);
    if (tag != Tag(v1::UpdateBatch::kUpdatesFieldNumber, kBytes)) return in.Skip(tag);
    UpdateRef u;
    const size_t start = in.offset();
    in.StartItem();
    std::optional<std::string> event_error;
    set.clear();
    increment.clear();
    unset.clear();
    events.clear();
    const bool read = in.ReadMessage(true, [&](uint32_t field) {
      uint64_t n;
      switch (field) {
        case Tag(v1::ProfileUpdate::kKeyFieldNumber, kBytes):
          return in.ReadString(&u.key);
        case Tag(v1::ProfileUpdate::kSetFieldNumber, kBytes):
          return in.ReadEntry(&set);
        case Tag(v1::ProfileUpdate::kUnsetFieldNumber, kBytes):
          return in.ReadString(&unset.emplace_back());
        case Tag(v1::ProfileUpdate::kIncrementFieldNumber, kBytes):
          return in.ReadEntry(&increment);
        case Tag(v1::ProfileUpdate::kEventsFieldNumber, kBytes):
          return in.ReadEvent(&events, &event_error);
        case Tag(v1::ProfileUpdate::kDeleteFieldNumber, kVarint):
          if (!in.ReadVarint(&n)) return false;
          u.del = n != 0;
          return true;
        default:
          return in.Skip(field);
      }
    });
    if (!read) return false;
    std::optional<std::string> error;
    if (u.del) {
      // A delete ignores the rest of the update (SPEC §2), kinds included.
    } else if (std::optional<std::string> bad = FinishMap(&set)) {
      error = ValueWithoutKind("set", *bad);
    } else if (std::optional<std::string> bad = FinishMap(&increment)) {
      error = ValueWithoutKind("increment", *bad);
    } else {
      error = std::move(event_error);
      u.set = in.Keep(set.entries);
      u.unset = in.Keep(unset);
      u.increment = in.Keep(increment.entries);
      u.events = in.KeepEvents(&events);
    }
    u.memory = {bytes.substr(start, in.offset() - start), in.kept_memory()};
    Add(&out.updates, index++, u, std::move(error));
    return true;
  });
  if (!ok) return Malformed("UpdateBatch", in.position());
  return out;
}

absl::StatusOr<DecodedReplayRequest> DecodeReplayRequest(std::string_view bytes,
                                                         uint32_t first_index,
                                                         std::pmr::memory_resource* blocks) {
  DecodedReplayRequest out;
  out.arena = NewRequestArena(64 << 10, blocks);  // a profile's refs take ~2 KB
  Decoder in(bytes, out.arena.get());
  // The profile being read, before Keep copies its parts to the arena.
  Map attributes;
  std::vector<EventRef> events;
  const bool ok = in.ReadMessage(false, [&](uint32_t tag) {
    uint64_t n;
    if (tag == Tag(v1::ReplayRequest::kQuietFieldNumber, kVarint)) {
      if (!in.ReadVarint(&n)) return false;
      out.quiet = n != 0;
      return true;
    }
    if (tag != Tag(v1::ReplayRequest::kProfilesFieldNumber, kBytes)) return in.Skip(tag);
    ProfileRef p;
    const size_t start = in.offset();
    in.StartItem();
    attributes.clear();
    events.clear();
    std::optional<std::string> event_error;
    const bool read = in.ReadMessage(true, [&](uint32_t field) {
      switch (field) {
        case Tag(v1::Profile::kKeyFieldNumber, kBytes):
          return in.ReadString(&p.key);
        case Tag(v1::Profile::kAttributesFieldNumber, kBytes):
          return in.ReadEntry(&attributes);
        case Tag(v1::Profile::kEventsFieldNumber, kBytes):
          return in.ReadEvent(&events, &event_error);
        default:  // `segments` is output only
          return in.Skip(field);
      }
    });
    if (!read) return false;
    std::optional<std::string> error;
    if (std::optional<std::string> bad = FinishMap(&attributes)) {
      error = ValueWithoutKind("attributes", *bad);
    } else {
      error = std::move(event_error);
      p.attributes = in.Keep(attributes.entries);
      p.events = in.KeepEvents(&events);
    }
    p.memory = {bytes.substr(start, in.offset() - start), in.kept_memory()};
    Add(&out.converted, first_index + out.profiles++, p, std::move(error));
    return true;
  });
  if (!ok) return Malformed("ReplayRequest", in.position());
  return out;
}

}  // namespace segd::server
