#include "core/profile_store.h"

#include <malloc.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/key_index.h"
#include "core/prefetch.h"
#include "core/profile_check.h"
#include "core/profile_codec.h"
#include "core/text.h"

namespace segd {
namespace {

std::string_view WithArticle(ValueKind kind) {
  switch (kind) {
    case ValueKind::kString:
      return "a string";
    case ValueKind::kInt:
      return "an int";
    case ValueKind::kFloat:
      return "a float";
    case ValueKind::kBool:
      return "a bool";
    case ValueKind::kTime:
      return "a time";
    case ValueKind::kList:
      return "a list";
  }
  return "?";
}

// base + delta under SPEC §2's increment rules; `delta` (a Value or ValueRef) is an int or
// a float (CheckUpdate).
template <typename V>
absl::Status Increment(const Value& base, const V& delta, std::string_view name, Value* result) {
  double sum;
  if (base.kind() == ValueKind::kInt && delta.kind() == ValueKind::kInt) {
    int64_t r;
    if (__builtin_add_overflow(base.int_value(), delta.int_value(), &r)) {
      return Invalid(absl::StrCat(Quoted("increment", name), ": int64 overflow"));
    }
    *result = Value::Int(r);
    return absl::OkStatus();
  }
  const double d = delta.kind() == ValueKind::kInt ? static_cast<double>(delta.int_value())
                                                   : delta.float_value();
  if (base.kind() == ValueKind::kInt) {
    sum = static_cast<double>(base.int_value()) + d;
  } else if (base.kind() == ValueKind::kFloat) {
    sum = base.float_value() + d;
  } else {
    return Invalid(absl::StrCat(Quoted("increment", name), ": attribute is ",
                                AsAbsl(WithArticle(base.kind())), ", not a number"));
  }
  if (!std::isfinite(sum)) {
    return Invalid(
        absl::StrCat(Quoted("increment", name), ": float result is ", sum > 0 ? "Inf" : "-Inf"));
  }
  *result = Value::Float(sum);
  return absl::OkStatus();
}

// Inline: a replayed profile adds the type of each of its events (one call took ~30
// instructions of the ~1,000 an event costs).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void AddType(uint32_t type, NameIds* types) {
  if (std::find(types->begin(), types->end(), type) == types->end()) types->push_back(type);
}

}  // namespace

// Profiles live in Records, one per slot, in chunks that never move. A Record owns
// its profile's blob (profile_codec.h), allocated with malloc so that the slack
// malloc rounds up to serves as room for appended events (malloc_usable_size).
struct ProfileStore::Impl {
  struct Record {
    uint8_t* data = nullptr;  // the blob; null iff the slot is free
    uint32_t size = 0;        // bytes of blob
    uint32_t num_events = 0;
    // The time of the last event in history order, when num_events > 0: an event at or
    // after it (the usual one, at now) is appended without walking the history.
    int64_t last_time = 0;
  };
  static constexpr int kChunkBits = 12;
  static constexpr Slot kChunkSize = Slot{1} << kChunkBits;
  static constexpr size_t kMallocOverhead = 8;  // glibc's chunk header

  // The key index holds slots and reads their keys from the blobs, so a key is stored
  // once.
  struct KeyOfSlot {
    const Impl* impl;
    std::string_view operator()(Slot s) const { return impl->KeyOf(s); }
  };

  // An attribute's fate in an update, planned before anything is changed.
  struct AttrChange {
    enum Op : uint8_t { kNone, kRemove, kSetRef, kSetComputed };
    std::string_view name;
    Op op = kNone;
    bool changed = false;
    const Value* ref = nullptr;  // kSetRef: the update's value
    Value computed;              // kSetComputed: an increment's result, or a borrowed value
    const Value& value() const { return op == kSetRef ? *ref : computed; }
    // Sets the update's value: an owned one by reference, a borrowed one copied.
    void Set(const Value& v) {
      op = kSetRef;
      ref = &v;
    }
    void Set(const ValueRef& v) {
      op = kSetComputed;
      computed = ToValue(v);
    }
  };

  Impl(const EngineOptions& options, Interner& names)
      : options(options), names(names), index(KeyOfSlot{this}) {}

  ~Impl() {
    for (Slot s = 0; s < limit; ++s) std::free(rec(s).data);
  }

  Record& rec(Slot s) { return chunks[s >> kChunkBits][s & (kChunkSize - 1)]; }
  const Record& rec(Slot s) const { return chunks[s >> kChunkBits][s & (kChunkSize - 1)]; }
  std::string_view KeyOf(Slot s) const { return codec::KeyOfBlob(rec(s).data); }
  codec::BlobLayout Layout(const Record& r) const { return codec::ParseBlob(r.data, r.size); }

  // ---- Blob memory ----

  size_t Footprint(const uint8_t* data) const {
    return data ? malloc_usable_size(const_cast<uint8_t*>(data)) + kMallocOverhead : 0;
  }
  void Reallocate(Record& r, size_t capacity) {
    blob_bytes -= Footprint(r.data);
    void* p = std::realloc(r.data, capacity);
    if (p == nullptr) throw std::bad_alloc();
    r.data = static_cast<uint8_t*>(p);
    blob_bytes += Footprint(r.data);
  }
  // Replaces the whole blob, fitting it exactly.
  void SetBlob(Record& r, std::string_view bytes) {
    blob_bytes -= Footprint(r.data);
    std::free(r.data);
    r.data = nullptr;
    Reallocate(r, bytes.size());
    std::memcpy(r.data, bytes.data(), bytes.size());
    r.size = static_cast<uint32_t>(bytes.size());
  }
  // Replaces blob bytes [begin, end) by `bytes`, which must not point into the blob.
  // A blob that must grow gets a quarter more room than it needs, so a profile receiving
  // events is reallocated every few events rather than every two or three (an eighth cost
  // 3-6 % more CPU an update at full ingest, for ~2.5 % less RSS once histories grew).
  void ReplaceRange(Record& r, size_t begin, size_t end, std::string_view bytes) {
    const size_t old_size = r.size;
    const size_t new_size = old_size - (end - begin) + bytes.size();
    if (new_size > malloc_usable_size(r.data)) Reallocate(r, new_size + new_size / 4);
    if (end != begin + bytes.size()) {
      std::memmove(r.data + begin + bytes.size(), r.data + end, old_size - end);
    }
    std::memcpy(r.data + begin, bytes.data(), bytes.size());
    r.size = static_cast<uint32_t>(new_size);
  }
  size_t Offset(const Record& r, const uint8_t* p) const { return p - r.data; }

  Slot NewSlot(std::string_view blob) {
    Slot s;
    if (!free_slots.empty()) {
      s = free_slots.back();
      free_slots.pop_back();
    } else {
      s = limit++;
      if ((s & (kChunkSize - 1)) == 0) chunks.push_back(std::make_unique<Record[]>(kChunkSize));
    }
    SetBlob(rec(s), blob);
    index.Insert(s, KeyIndex<KeyOfSlot>::Hash(KeyOf(s)));
    ++live;
    return s;
  }

  // ---- Attributes ----

  // A profile's attributes, inline up to 16 (the standard profile has 9).
  using Fields = absl::InlinedVector<codec::Field, 16>;
  void DecodeAttributes(const Record& r, Fields* fields) const {
    const codec::BlobLayout b = Layout(r);
    fields->clear();
    codec::Field f;
    for (const uint8_t* p = b.attrs; p < b.events;) {
      p = codec::NextField(p, &f);
      fields->push_back(f);
    }
  }

  // Works out what the update does to the attributes of `r` (null: a new profile),
  // rejecting what SPEC §2 rejects. Changes nothing.
  template <typename Update>  // ProfileUpdate or UpdateRef
  absl::Status PlanAttributes(const Update& u, const Record* r,
                              std::vector<AttrChange>* plan) const;

  // Carries out a plan; appends the ids of changed attributes to out->attributes.
  void ApplyAttributes(Record& r, const std::vector<AttrChange>& plan, AppliedUpdate* out);

  // ---- Events ----

  // Appends the fields of `entries` (attributes or properties: NamedValues, or a span of
  // NamedValueRef) sorted by name id, a later entry of a name winning.
  template <typename Entries>
  void EncodeFields(const Entries& entries, codec::Buffer* out);
  template <typename E>  // Event or EventRef
  void AddEvent(Record& r, const E& e, int64_t now, AppliedUpdate* out);
  void DropOldest(Record& r, AppliedUpdate* out);
  void Prune(Record& r, int64_t now);

  // ---- Decoded histories ----

  // A profile with a long history (a hot key's holds max_events) would have all of it
  // decoded again to evaluate each of its updates. The store keeps the decoded event
  // heads of the long histories it has seen updated twice lately, in step with their
  // blobs: an update that appends events (and drops the oldest) patches them instead.
  struct History {
    static constexpr Slot kNone = std::numeric_limits<Slot>::max();
    Slot slot = kNone;
    std::vector<ProfileView::EventRef> events;  // from `first` on: every stored event
    size_t first = 0;
    int64_t shift = 0;  // an event's properties start at its blob + props_offset + shift
    std::span<const ProfileView::EventRef> stored() const {
      return std::span(events).subspan(first);
    }
  };
  static constexpr size_t kHistories = 256;  // a direct-mapped cache, by slot
  const History* HistoryOf(Slot s) const {
    const History& h = histories[s % kHistories];
    return h.slot == s ? &h : nullptr;
  }
  size_t HistoriesBytes() const {
    size_t bytes =
        histories.capacity() * sizeof(History) + history_candidates.capacity() * sizeof(Slot);
    for (const History& h : histories) bytes += h.events.capacity() * sizeof(h.events[0]);
    return bytes;
  }
  void Forget(Slot s) {
    History& h = histories[s % kHistories];
    if (h.slot == s) h.slot = History::kNone;
  }
  // The decoded head of event `e` of the blob at `data`, for a view that finds its
  // properties at data + props_offset + shift.
  static ProfileView::EventRef HeadOf(const codec::EventHead& e, const uint8_t* data,
                                      int64_t shift = 0) {
    const uint8_t* props = codec::EventProps(e);
    return {e.time, e.type, static_cast<uint32_t>(e.end - props),
            static_cast<uint32_t>(props - data - shift)};
  }
  // Decodes the whole history of the profile at `s` into its place in the cache.
  void Remember(Slot s);
  // Brings the cached history of `s`, if any, in step with the update just applied to
  // it (its blob was old_size bytes and held old_events events before), or caches it.
  void Follow(Slot s, uint32_t old_size, uint32_t old_events, const AppliedUpdate& out);

  const EngineOptions& options;
  Interner& names;
  codec::ValueDictionary values;
  std::vector<std::unique_ptr<Record[]>> chunks;
  Slot limit = 0;
  std::vector<Slot> free_slots;
  KeyIndex<KeyOfSlot> index;
  size_t live = 0;
  uint64_t total_events = 0;
  size_t blob_bytes = 0;

  std::vector<History> histories = std::vector<History>(kHistories);
  // The last long history updated, by place in the cache: a second update caches it.
  std::vector<Slot> history_candidates = std::vector<Slot>(kHistories, History::kNone);
  // Bytes of the events the current update appended at the end of its profile's blob.
  uint32_t appended_bytes = 0;

  // Scratch, reused across calls to spare allocations on the ingest and replay paths.
  std::vector<AttrChange> plan;
  // (name id << 32 | index) of the entries EncodeFields encodes: sorted as numbers, by
  // id and then by position.
  std::vector<uint64_t> field_order;
  codec::Buffer buf, blob;
  // A replayed event to keep, by time and then by its index in the profile.
  struct Kept {
    int64_t time;
    uint32_t index;
    friend auto operator<=>(const Kept&, const Kept&) = default;
  };
  std::vector<Kept> kept;
};

template <typename Update>
absl::Status ProfileStore::Impl::PlanAttributes(const Update& u, const Record* r,
                                                std::vector<AttrChange>* plan) const {
  plan->clear();
  if (u.unset.empty() && u.set.empty() && u.increment.empty()) return absl::OkStatus();
  Fields fields;
  if (r != nullptr) DecodeAttributes(*r, &fields);
  auto stored = [&](std::string_view name) -> const codec::Field* {
    const std::optional<uint32_t> id = names.Find(name);
    if (!id) return nullptr;
    auto it = std::lower_bound(fields.begin(), fields.end(), *id,
                               [](const codec::Field& f, uint32_t id) { return f.name < id; });
    return it != fields.end() && it->name == *id ? &*it : nullptr;
  };
  absl::flat_hash_map<std::string_view, size_t, StringHash, StringEq> by_name;
  auto at = [&](std::string_view name) -> AttrChange& {
    auto [it, inserted] = by_name.try_emplace(name, plan->size());
    if (inserted) plan->emplace_back().name = name;
    return (*plan)[it->second];
  };
  for (std::string_view name : u.unset) at(name).op = AttrChange::kRemove;
  for (const auto& [name, value] : u.set) at(name).Set(value);
  absl::flat_hash_map<std::string_view, size_t, StringHash, StringEq> last_increment;
  for (size_t i = 0; i < u.increment.size(); ++i) last_increment[u.increment[i].first] = i;
  for (size_t i = 0; i < u.increment.size(); ++i) {
    const auto& [name, delta] = u.increment[i];
    if (last_increment[name] != i) continue;
    AttrChange& c = at(name);
    Value base = Value::Int(0);  // a missing attribute counts as 0
    if (c.op == AttrChange::kSetRef || c.op == AttrChange::kSetComputed) {
      base = c.value();
    } else if (const codec::Field* f = c.op == AttrChange::kNone ? stored(name) : nullptr) {
      base = codec::FieldValue(*f, values.strings());
    }
    Value sum;
    if (absl::Status s = Increment(base, delta, name, &sum); !s.ok()) return s;
    c.computed = std::move(sum);
    c.op = AttrChange::kSetComputed;
  }
  for (AttrChange& c : *plan) {
    const codec::Field* f = stored(c.name);
    if (c.op == AttrChange::kRemove) {
      c.changed = f != nullptr;
    } else {
      c.changed =
          f == nullptr || !codec::SameValue(codec::FieldValue(*f, values.strings()), c.value());
    }
  }
  return absl::OkStatus();
}

void ProfileStore::Impl::ApplyAttributes(Record& r, const std::vector<AttrChange>& plan,
                                         AppliedUpdate* out) {
  if (std::none_of(plan.begin(), plan.end(), [](const AttrChange& c) { return c.changed; })) {
    return;
  }
  struct Entry {
    uint32_t name;
    const codec::Field* stored;  // keep these bytes, unless value is set
    const Value* value;          // encode this; both null: removed
  };
  Fields fields;
  DecodeAttributes(r, &fields);
  std::vector<Entry> entries;
  entries.reserve(fields.size() + plan.size());
  for (const codec::Field& f : fields) entries.push_back({f.name, &f, nullptr});
  const size_t num_stored = entries.size();  // sorted by name
  for (const AttrChange& c : plan) {
    if (!c.changed) continue;
    const uint32_t id = names.Intern(c.name);
    out->attributes.push_back(id);
    const Value* value = c.op == AttrChange::kRemove ? nullptr : &c.value();
    auto it = std::lower_bound(entries.begin(), entries.begin() + num_stored, id,
                               [](const Entry& e, uint32_t id) { return e.name < id; });
    if (it != entries.begin() + num_stored && it->name == id) {
      it->stored = nullptr;
      it->value = value;
    } else {
      entries.push_back({id, nullptr, value});
    }
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.name < b.name; });
  buf.Clear();
  const size_t mark = codec::BeginLength(&buf);
  for (const Entry& e : entries) {
    if (e.value != nullptr) {
      codec::AppendField(e.name, *e.value, &values, &buf);
    } else if (e.stored != nullptr) {
      codec::PutBytes(&buf, std::string_view(reinterpret_cast<const char*>(e.stored->begin),
                                             e.stored->end - e.stored->begin));
    }
  }
  codec::EndLength(mark, &buf);
  const codec::BlobLayout b = Layout(r);
  ReplaceRange(r, Offset(r, b.attrs_len), Offset(r, b.events), buf.view());
}

template <typename Entries>
void ProfileStore::Impl::EncodeFields(const Entries& entries, codec::Buffer* out) {
  const auto append = [&](uint32_t id, uint32_t i) {
    codec::AppendField(id, entries[i].second, &values, out);
  };
  if (entries.size() <= 2) {  // most events' properties: put in order at once
    if (entries.empty()) return;
    const uint32_t first = names.Intern(entries[0].first);
    if (entries.size() == 1) return append(first, 0);
    const uint32_t second = names.Intern(entries[1].first);
    if (first == second) return append(second, 1);  // the later entry of a name wins
    if (first > second) {
      append(second, 1);
      return append(first, 0);
    }
    append(first, 0);
    return append(second, 1);
  }
  std::vector<uint64_t>& order = field_order;
  order.clear();
  for (uint32_t i = 0; i < entries.size(); ++i) {
    order.push_back(uint64_t{names.Intern(entries[i].first)} << 32 | i);
  }
  // By id, equal ids in the order given. Most maps are a few entries: an insertion sort.
  if (order.size() <= 16) {
    for (size_t i = 1; i < order.size(); ++i) {
      const uint64_t x = order[i];
      size_t j = i;
      for (; j > 0 && order[j - 1] > x; --j) order[j] = order[j - 1];
      order[j] = x;
    }
  } else {
    std::sort(order.begin(), order.end());
  }
  for (size_t k = 0; k < order.size(); ++k) {
    const auto id = static_cast<uint32_t>(order[k] >> 32);
    if (k + 1 < order.size() && static_cast<uint32_t>(order[k + 1] >> 32) == id) continue;
    append(id, static_cast<uint32_t>(order[k]));
  }
}

template <typename E>
void ProfileStore::Impl::AddEvent(Record& r, const E& e, int64_t now, AppliedUpdate* out) {
  const int64_t t = e.time == 0 ? now : e.time;
  if (t <= now - options.retention_ms) return;
  const codec::BlobLayout b = Layout(r);
  const std::optional<uint32_t> known_type = e.id.empty() ? std::nullopt : names.Find(e.type);
  const uint8_t* at = nullptr;
  int64_t prev_at = -1;  // the time of the event before `at`; -1 if none
  int64_t prev = -1;
  codec::EventHead h;
  if (!known_type && (r.num_events == 0 || t >= r.last_time)) {
    // No duplicate to look for, and the event goes last.
    at = b.end;
    prev_at = r.num_events == 0 ? -1 : r.last_time;
  }
  if (at == nullptr) {
    // One walk finds a duplicate and the insertion point: after every event at or
    // before t.
    for (const uint8_t* p = b.events; p < b.end;) {
      const uint8_t* next = codec::NextEvent(p, b.end, prev, &h);
      if (at == nullptr && h.time > t) {
        at = p;
        prev_at = prev;
        if (!known_type) break;
      }
      if (known_type && h.type == *known_type && h.has_id && codec::EventId(h) == e.id) return;
      prev = h.time;
      p = next;
    }
    if (at == nullptr) {
      at = b.end;
      prev_at = prev;
    }
  }

  const uint32_t type = names.Intern(e.type);
  buf.Clear();
  const size_t mark = codec::BeginEvent(prev_at < 0 ? t : t - prev_at, type, e.id, &buf);
  EncodeFields(e.properties, &buf);
  codec::EndLength(mark, &buf);
  size_t end = Offset(r, at);
  if (at < b.end) {  // the next event's time code becomes relative to this one
    uint64_t code;
    const uint8_t* rest = codec::GetVarint(at, &code);
    const int64_t next_time = prev_at < 0 ? static_cast<int64_t>(code) : prev_at + code;
    codec::PutVarint(&buf, next_time - t);
    end = Offset(r, rest);
  }
  if (at == b.end) {
    r.last_time = t;
    appended_bytes += static_cast<uint32_t>(buf.size());
  } else {
    out->events_appended = false;
  }
  ReplaceRange(r, Offset(r, at), end, buf.view());
  ++r.num_events;
  ++total_events;
  ++out->events_added;
  AddType(type, &out->event_types);
  if (r.num_events > options.max_events) DropOldest(r, out);
}

void ProfileStore::Impl::DropOldest(Record& r, AppliedUpdate* out) {
  const codec::BlobLayout b = Layout(r);
  codec::EventHead first;
  const uint8_t* second = codec::NextEvent(b.events, b.end, -1, &first);
  AddType(first.type, &out->event_types);
  out->events_dropped = true;
  buf.Clear();
  size_t end = Offset(r, b.end);
  if (second < b.end) {  // the second event's time code becomes absolute
    uint64_t code;
    const uint8_t* rest = codec::GetVarint(second, &code);
    codec::PutVarint(&buf, first.time + code);
    end = Offset(r, rest);
  }
  ReplaceRange(r, Offset(r, b.events), end, buf.view());
  --r.num_events;
  --total_events;
}

void ProfileStore::Impl::Prune(Record& r, int64_t now) {
  const int64_t cutoff = now - options.retention_ms;
  const codec::BlobLayout b = Layout(r);
  uint32_t dropped = 0;
  int64_t prev = -1;
  const uint8_t* p = b.events;
  codec::EventHead h;
  while (p < b.end) {
    const uint8_t* next = codec::NextEvent(p, b.end, prev, &h);
    if (h.time > cutoff) break;
    prev = h.time;
    p = next;
    ++dropped;
  }
  if (dropped == 0) return;
  buf.Clear();
  size_t end = Offset(r, b.end);
  if (p < b.end) {  // the first retained event's time code becomes absolute
    codec::PutVarint(&buf, h.time);
    end = Offset(r, h.rest);
  }
  ReplaceRange(r, Offset(r, b.events), end, buf.view());
  r.num_events -= dropped;
  total_events -= dropped;
  if (malloc_usable_size(r.data) > 2 * size_t{r.size} + 64) Reallocate(r, r.size);
}

ProfileStore::ProfileStore(const EngineOptions& options)
    : options_(options), impl_(std::make_unique<Impl>(options_, interner_)) {}

ProfileStore::~ProfileStore() = default;

std::optional<Slot> ProfileStore::Find(std::string_view key) const {
  return impl_->index.Find(key, KeyIndex<Impl::KeyOfSlot>::Hash(key));
}

std::optional<Slot> ProfileStore::Prefetch(std::string_view key, PrefetchStage stage) const {
  const Impl& m = *impl_;
  const uint64_t hash = KeyIndex<Impl::KeyOfSlot>::Hash(key);
  if (stage == PrefetchStage::kIndex) {
    m.index.PrefetchBucket(hash);
    return std::nullopt;
  }
  const std::optional<Slot> slot = m.index.Candidate(hash);
  if (!slot) return std::nullopt;
  const Impl::Record& r = m.rec(*slot);
  if (stage == PrefetchStage::kRecord) {
    PrefetchLine(&r);
  } else if (r.data != nullptr) {
    // The update walks the whole history (to find duplicates and the insertion point)
    // and evaluation decodes it: load all of a typical blob, not just its head.
    constexpr uint32_t kMaxPrefetchBytes = 1024;
    const uint32_t bytes = std::min(r.size, kMaxPrefetchBytes);
    for (uint32_t off = 0; off < bytes; off += 64) PrefetchLine(r.data + off);
  }
  return slot;
}

namespace {

// Calls f(s) for each string value of `entries` (NamedValues or a span of NamedValueRef).
template <typename Entries, typename F>
void ForEachString(const Entries& entries, const F& f) {
  for (const auto& [name, value] : entries) {
    if (value.kind() == ValueKind::kString) f(value.string_value());
  }
}

// The dictionary slots of the string values of an update's events.
template <typename Update>  // ProfileUpdate or UpdateRef
void PrefetchEventValues(const codec::ValueDictionary& values, const Update& update) {
  const auto prefetch = [&](std::string_view s) { values.Prefetch(s); };
  for (const auto& e : update.events) ForEachString(e.properties, prefetch);
}

}  // namespace

void ProfileStore::PrefetchValues(const ProfileUpdate& update) const {
  PrefetchEventValues(impl_->values, update);
}

void ProfileStore::PrefetchValues(const UpdateRef& update) const {
  PrefetchEventValues(impl_->values, update);
}

void ProfileStore::PrefetchValues(const ProfileRef& profile) const {
  const auto prefetch = [&](std::string_view s) { impl_->values.PrefetchWithSighting(s); };
  ForEachString(profile.attributes, prefetch);
  for (const EventRef& e : profile.events) ForEachString(e.properties, prefetch);
}

absl::Status ProfileStore::Validate(const ProfileUpdate& update, int64_t now) const {
  return ValidateWith(update, now);
}

absl::Status ProfileStore::Validate(const UpdateRef& update, int64_t now) const {
  return ValidateWith(update, now);
}

template <typename Update>
absl::Status ProfileStore::ValidateWith(const Update& update, int64_t now) const {
  if (absl::Status s = CheckUpdate(update, now, options_); !s.ok()) return s;
  const std::optional<Slot> slot = Find(update.key);
  std::vector<Impl::AttrChange> plan;
  return impl_->PlanAttributes(update, slot ? &impl_->rec(*slot) : nullptr, &plan);
}

absl::StatusOr<AppliedUpdate> ProfileStore::Apply(const ProfileUpdate& update, int64_t now) {
  return ApplyWith(update, now);
}

absl::StatusOr<AppliedUpdate> ProfileStore::Apply(const UpdateRef& update, int64_t now) {
  return ApplyWith(update, now);
}

template <typename Update>
absl::StatusOr<AppliedUpdate> ProfileStore::ApplyWith(const Update& update, int64_t now) {
  assert(!update.del);
  if (absl::Status s = CheckUpdate(update, now, options_); !s.ok()) return s;
  std::optional<Slot> slot = Find(update.key);
  if (absl::Status s =
          impl_->PlanAttributes(update, slot ? &impl_->rec(*slot) : nullptr, &impl_->plan);
      !s.ok()) {
    return s;
  }
  // Nothing below can fail.
  AppliedUpdate out;
  if (!slot) {
    impl_->buf.Clear();
    codec::EndLength(codec::BeginBlob(update.key, &impl_->buf), &impl_->buf);  // no attributes
    slot = impl_->NewSlot(impl_->buf.view());
    out.created = true;
  }
  out.slot = *slot;
  Impl::Record& r = impl_->rec(*slot);
  const uint32_t old_size = r.size, old_events = r.num_events;
  impl_->appended_bytes = 0;
  impl_->Prune(r, now);
  impl_->ApplyAttributes(r, impl_->plan, &out);
  for (const auto& e : update.events) impl_->AddEvent(r, e, now, &out);
  impl_->Follow(*slot, old_size, old_events, out);
  return out;
}

absl::StatusOr<ReplacedProfile> ProfileStore::Replace(const ProfileData& profile, int64_t now) {
  return ReplaceWith(profile, now);
}

absl::StatusOr<ReplacedProfile> ProfileStore::Replace(const ProfileRef& profile, int64_t now) {
  return ReplaceWith(profile, now);
}

template <typename Profile>
absl::StatusOr<ReplacedProfile> ProfileStore::ReplaceWith(const Profile& profile, int64_t now) {
  if (absl::Status s = CheckProfile(profile, now, options_); !s.ok()) return s;
  // Nothing below can fail.
  Impl& m = *impl_;
  ReplacedProfile out;
  const std::optional<Slot> slot = Find(profile.key);
  out.created = !slot;

  // The key, then the attributes, by name id; a later entry of a name wins.
  codec::Buffer& blob = m.blob;
  blob.Clear();
  const size_t attrs_mark = codec::BeginBlob(profile.key, &blob);
  m.EncodeFields(profile.attributes, &blob);
  codec::EndLength(attrs_mark, &blob);

  // Events: retained ones, first of each (type, id), the newest max_events in history
  // order.
  std::vector<Impl::Kept>& kept = m.kept;
  kept.clear();
  absl::flat_hash_set<std::pair<std::string_view, std::string_view>> ids;
  for (uint32_t i = 0; i < profile.events.size(); ++i) {
    const auto& e = profile.events[i];
    const int64_t t = e.time == 0 ? now : e.time;
    if (t <= now - options_.retention_ms) continue;
    if (!e.id.empty() && !ids.emplace(e.type, e.id).second) continue;
    kept.push_back({t, i});
  }
  if (!std::is_sorted(kept.begin(), kept.end())) {  // history order, as a rule
    std::sort(kept.begin(), kept.end());            // by time, then index: stable by time
  }
  if (kept.size() > options_.max_events) {
    kept.erase(kept.begin(), kept.end() - options_.max_events);
  }
  int64_t prev = -1;
  for (const Impl::Kept& k : kept) {
    const auto& e = profile.events[k.index];
    const uint32_t type = interner_.Intern(e.type);
    const size_t mark = codec::BeginEvent(prev < 0 ? k.time : k.time - prev, type, e.id, &blob);
    m.EncodeFields(e.properties, &blob);
    codec::EndLength(mark, &blob);
    prev = k.time;
  }
  out.events_added = static_cast<uint32_t>(kept.size());
  if (slot) {
    Impl::Record& r = m.rec(*slot);
    m.total_events -= r.num_events;
    m.SetBlob(r, blob.view());  // the key, and so the index entry, is unchanged
    m.Forget(*slot);
    r.num_events = out.events_added;
    r.last_time = prev;
    out.slot = *slot;
  } else {
    out.slot = m.NewSlot(blob.view());
    m.rec(out.slot).num_events = out.events_added;
    m.rec(out.slot).last_time = prev;
  }
  m.total_events += out.events_added;
  return out;
}

void ProfileStore::Erase(Slot slot) {
  Impl& m = *impl_;
  Impl::Record& r = m.rec(slot);
  if (r.data == nullptr) return;
  m.Forget(slot);
  m.index.Erase(slot, KeyIndex<Impl::KeyOfSlot>::Hash(m.KeyOf(slot)));  // before the blob goes
  m.total_events -= r.num_events;
  m.blob_bytes -= m.Footprint(r.data);
  std::free(r.data);
  r = Impl::Record();
  m.free_slots.push_back(slot);
  --m.live;
}

namespace {

// Calls f(head) for each event of the blob with time > cutoff, in history order.
template <typename F>
void ForEachRetainedEvent(const codec::BlobLayout& b, int64_t cutoff, const F& f) {
  codec::EventHead h;
  int64_t prev = -1;
  for (const uint8_t* p = b.events; p < b.end; prev = h.time) {
    p = codec::NextEvent(p, b.end, prev, &h);
    if (h.time > cutoff) f(h);
  }
}

}  // namespace

void ProfileStore::Load(Slot slot, int64_t now, ProfileView* view, LoadParts parts) const {
  const Impl::Record& r = impl_->rec(slot);
  const codec::BlobLayout b = impl_->Layout(r);
  const Interner& values = impl_->values.strings();
  view->key_ = b.key;
  view->interner_ = &values;
  view->attrs_.clear();
  view->list_items_.clear();
  view->events_ = {};
  view->own_events_.clear();
  bool has_list = false;
  codec::Field f;
  const uint8_t* attrs_end = (parts & kAttributes) ? b.events : b.attrs;
  for (const uint8_t* p = b.attrs; p < attrs_end;) {
    p = codec::NextField(p, &f);
    if (f.kind == codec::FieldKind::kList) {
      const uint32_t n = codec::ListSize(f);
      codec::ForEachListItem(f, values,
                             [&](std::string_view s) { view->list_items_.push_back(s); });
      auto& [name, v] = view->attrs_.emplace_back();
      name = f.name;
      v.kind = ValKind::kList;
      v.n_items = n;
      has_list = true;
    } else {
      auto& [name, v] = view->attrs_.emplace_back();
      name = f.name;
      codec::DecodeScalar(f, values, &v);
    }
  }
  if (has_list) {  // list_items_ is complete: now its addresses are stable
    size_t offset = 0;
    for (auto& [name, v] : view->attrs_) {
      if (v.kind != ValKind::kList) continue;
      v.items = view->list_items_.data() + offset;
      offset += v.n_items;
    }
  }
  if ((parts & kEvents) == 0) return;
  const int64_t cutoff = now - options_.retention_ms;
  view->blob_ = r.data;
  if (const Impl::History* h = impl_->HistoryOf(slot)) {
    // History order is time order: the events retention no longer keeps come first.
    std::span<const ProfileView::EventRef> stored = h->stored();
    size_t skip = 0;
    while (skip < stored.size() && stored[skip].time <= cutoff) ++skip;
    view->events_ = stored.subspan(skip);
    view->props_shift_ = h->shift;
    return;
  }
  view->props_shift_ = 0;
  ForEachRetainedEvent(b, cutoff, [&](const codec::EventHead& h) {
    view->own_events_.push_back(Impl::HeadOf(h, r.data));
  });
  view->events_ = view->own_events_;
}

void ProfileStore::Impl::Remember(Slot s) {
  History& h = histories[s % kHistories];
  const Record& r = rec(s);
  const codec::BlobLayout b = Layout(r);
  h.slot = s;
  h.events.clear();
  h.first = 0;
  h.shift = 0;
  ForEachRetainedEvent(b, std::numeric_limits<int64_t>::min(),
                       [&](const codec::EventHead& e) { h.events.push_back(HeadOf(e, r.data)); });
}

void ProfileStore::Impl::Follow(Slot s, uint32_t old_size, uint32_t old_events,
                                const AppliedUpdate& out) {
  const Record& r = rec(s);
  History& h = histories[s % kHistories];
  // Events at the end of the blob only, and not every event it had dropped: the ones it
  // kept moved together (by the attributes' change of size and the bytes dropped before
  // them; a first event's head rewritten to an absolute time precedes its properties)
  // and only the appended ones are new.
  const uint32_t dropped = old_events + out.events_added - r.num_events;
  if (h.slot == s && out.events_appended && dropped < old_events) {
    const uint32_t kept_end = r.size - appended_bytes;  // where the appended events start
    h.first += dropped;
    h.shift += int64_t{kept_end} - int64_t{old_size};
    int64_t prev = h.events.back().time;
    codec::EventHead e;
    for (const uint8_t* p = r.data + kept_end; p < r.data + r.size; prev = e.time) {
      p = codec::NextEvent(p, r.data + r.size, prev, &e);
      h.events.push_back(HeadOf(e, r.data, h.shift));
    }
    // Now and then the dropped heads go, and the offsets are made absolute again (a
    // shift only grows in magnitude as events come and go).
    if (h.first * 2 > h.events.size() || std::abs(h.shift) > (int64_t{1} << 20)) {
      h.events.erase(h.events.begin(), h.events.begin() + static_cast<ptrdiff_t>(h.first));
      h.first = 0;
      for (ProfileView::EventRef& ev : h.events) {
        ev.props_offset = static_cast<uint32_t>(ev.props_offset + h.shift);
      }
      h.shift = 0;
    }
    assert(h.stored().size() == r.num_events);
    return;
  }
  Forget(s);  // changed in the middle: decode it again
  if (r.num_events < std::max<uint32_t>(1, options.cached_history_min_events)) return;
  Slot& candidate = history_candidates[s % kHistories];
  if (candidate == s) {
    Remember(s);
  } else {
    candidate = s;
  }
}

uint64_t ProfileStore::MatchTypeSequence(std::span<const TypeStep> steps, int64_t now,
                                         int64_t after, std::span<uint64_t> matched) const {
  assert(matched.size() == steps.size() + 1);
  const Impl& m = *impl_;
  const int64_t from = std::max(after, now - options_.retention_ms);  // events after this
  const uint32_t n = static_cast<uint32_t>(steps.size());
  // A history being walked: the next event head, the end, the time before it, and the
  // steps matched so far.
  struct Lane {
    const uint8_t* p = nullptr;  // null: the lane is empty
    const uint8_t* end = nullptr;
    // The previous event's time (-1 before the first), or kPastFrom once past `from`:
    // histories are in time order, so every event from there on counts, and its time
    // need not be decoded.
    int64_t prev = -1;
    uint32_t k = 0;
  };
  constexpr int64_t kPastFrom = std::numeric_limits<int64_t>::min();
  constexpr int kLanes = 4;
  constexpr Slot kBlobsAhead = 16;
  Slot next = 0;
  // Starts the lane on the next live profile; false when there is none.
  auto refill = [&](Lane& lane) {
    for (; next < m.limit; ++next) {
      if (next + kBlobsAhead < m.limit) {  // the whole blob: the scan reads it all
        const Impl::Record& ahead = m.rec(next + kBlobsAhead);
        for (uint32_t off = 0; off < ahead.size; off += 64) PrefetchLine(ahead.data + off);
      }
      const Impl::Record& r = m.rec(next);
      if (r.data == nullptr) continue;
      const codec::BlobLayout b = m.Layout(r);
      lane = Lane{b.events, b.end, -1, 0};
      ++next;
      return true;
    }
    lane.p = nullptr;
    return false;
  };
  Lane lanes[kLanes];
  int active = 0;
  for (Lane& lane : lanes) active += refill(lane);
  uint64_t read = 0;
  while (active > 0) {
    for (Lane& lane : lanes) {
      if (lane.p == nullptr) continue;
      if (lane.p >= lane.end || lane.k == n) {  // this profile is done
        ++matched[lane.k];
        if (!refill(lane)) --active;
        continue;
      }
      uint32_t type;
      if (lane.prev == kPastFrom) {
        lane.p = codec::NextEventType(lane.p, lane.end, &type);
      } else {
        codec::EventHead h;
        lane.p = codec::NextEvent(lane.p, lane.end, lane.prev, &h);
        lane.prev = h.time;
        if (h.time <= from) continue;
        lane.prev = kPastFrom;
        type = h.type;
      }
      ++read;
      const TypeStep& step = steps[lane.k];
      lane.k += step.any || step.type == type;
    }
  }
  return read;
}

void ProfileStore::PrefetchBlob(Slot slot) const {
  const Impl::Record& r = impl_->rec(slot);
  if (r.data != nullptr) {
    PrefetchLine(r.data);
    PrefetchLine(r.data + 64);
    PrefetchLine(r.data + 128);
    PrefetchLine(r.data + 192);
  }
}

ProfileData ProfileStore::Read(Slot slot, int64_t now) const {
  const Impl::Record& r = impl_->rec(slot);
  const codec::BlobLayout b = impl_->Layout(r);
  const Interner& values = impl_->values.strings();
  auto by_name = [](const auto& a, const auto& b) { return a.first < b.first; };
  ProfileData out;
  out.key = std::string(b.key);
  codec::Field f;
  for (const uint8_t* p = b.attrs; p < b.events;) {
    p = codec::NextField(p, &f);
    out.attributes.emplace_back(std::string(interner_.Get(f.name)), codec::FieldValue(f, values));
  }
  std::sort(out.attributes.begin(), out.attributes.end(), by_name);
  ForEachRetainedEvent(b, now - options_.retention_ms, [&](const codec::EventHead& h) {
    Event& e = out.events.emplace_back();
    e.type = std::string(interner_.Get(h.type));
    e.time = h.time;
    e.id = std::string(codec::EventId(h));
    for (const uint8_t* q = codec::EventProps(h); q < h.end;) {
      q = codec::NextField(q, &f);
      e.properties.emplace_back(std::string(interner_.Get(f.name)), codec::FieldValue(f, values));
    }
    std::sort(e.properties.begin(), e.properties.end(), by_name);
  });
  return out;
}

std::string_view ProfileStore::Key(Slot slot) const { return impl_->KeyOf(slot); }

void ProfileStore::Prune(Slot slot, int64_t now) {
  impl_->Prune(impl_->rec(slot), now);
  impl_->Forget(slot);
}

Slot ProfileStore::slot_limit() const { return impl_->limit; }

bool ProfileStore::IsLive(Slot slot) const {
  return slot < impl_->limit && impl_->rec(slot).data != nullptr;
}

size_t ProfileStore::size() const { return impl_->live; }

uint64_t ProfileStore::event_count() const { return impl_->total_events; }

size_t ProfileStore::MemoryBytes() const {
  const Impl& m = *impl_;
  return m.blob_bytes + m.chunks.size() * Impl::kChunkSize * sizeof(Impl::Record) +
         m.chunks.capacity() * sizeof(m.chunks[0]) + m.free_slots.capacity() * sizeof(Slot) +
         m.index.MemoryBytes() + interner_.MemoryBytes() + m.values.MemoryBytes() +
         m.HistoriesBytes();
}

size_t ProfileStore::CachedHistories() const {
  const Impl& m = *impl_;
  return std::count_if(m.histories.begin(), m.histories.end(),
                       [](const Impl::History& h) { return h.slot != Impl::History::kNone; });
}

}  // namespace segd
