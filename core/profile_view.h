#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace segd {

class Interner;

// A value as the evaluator sees it (SPEC §3): a time is an int of ms; kMissing is the
// result of an absent name or of an operation with no result. Strings and list items
// point into the profile's storage or the rule, valid while the ProfileView is.
enum class ValKind : uint8_t { kMissing, kString, kInt, kFloat, kBool, kList };

struct Val {
  ValKind kind = ValKind::kMissing;
  // kString from a store's value table: interned strings are unique there, so two
  // interned strings are equal exactly when they are the same pointer.
  bool interned = false;
  uint32_t value_id = 0;  // kString when interned: its id in the store's value table
  union {
    int64_t i;
    double f;
    bool b;
  };
  std::string_view s;                       // kString
  const std::string_view* items = nullptr;  // kList: items[0 .. n_items)
  uint32_t n_items = 0;

  Val() : i(0) {}
  static Val Missing() { return Val(); }
  static Val Int(int64_t v) {
    Val r;
    r.kind = ValKind::kInt;
    r.i = v;
    return r;
  }
  static Val Float(double v) {
    Val r;
    r.kind = ValKind::kFloat;
    r.f = v;
    return r;
  }
  static Val Bool(bool v) {
    Val r;
    r.kind = ValKind::kBool;
    r.b = v;
    return r;
  }
  static Val String(std::string_view v) {
    Val r;
    r.kind = ValKind::kString;
    r.s = v;
    return r;
  }
  static Val List(const std::string_view* items, uint32_t n) {
    Val r;
    r.kind = ValKind::kList;
    r.items = items;
    r.n_items = n;
    return r;
  }
  bool missing() const { return kind == ValKind::kMissing; }
  bool is_true() const { return kind == ValKind::kBool && b; }
  bool is_number() const { return kind == ValKind::kInt || kind == ValKind::kFloat; }
};

// Read access to one profile as of one moment, for evaluation: its attributes and its
// retained events in history order (time, then arrival). Filled by
// ProfileStore::Load(); valid until the store next changes a profile (any profile: the
// events may be the store's own decoded copy of a long history) or the view is
// reloaded. A view is reusable scratch: loading into it again reuses its buffers.
class ProfileView {
 public:
  ProfileView() = default;
  ProfileView(const ProfileView&) = delete;
  ProfileView& operator=(const ProfileView&) = delete;

  std::string_view key() const { return key_; }

  // The attribute with interned name `name_id`, or Missing.
  Val Attr(uint32_t name_id) const {
    for (const auto& [id, v] : attrs_) {
      if (id == name_id) return v;
    }
    return Val::Missing();
  }

  size_t num_events() const { return events_.size(); }
  int64_t event_time(size_t i) const { return events_[i].time; }
  uint32_t event_type(size_t i) const { return events_[i].type; }
  // Property `name_id` of event i, or Missing. Decodes on each call.
  Val EventProp(size_t i, uint32_t name_id) const;

 private:
  friend class ProfileStore;
  // An event's head, decoded; its properties stay encoded in the profile's blob, at
  // blob_ + props_offset + props_shift_ (the shift lets the store keep the heads of a
  // long history in step with a blob whose bytes moved, without touching each one).
  struct EventRef {
    int64_t time;
    uint32_t type;
    uint32_t props_size;    // bytes of encoded properties
    uint32_t props_offset;  // where they start (see above)
  };
  std::string_view key_;
  std::vector<std::pair<uint32_t, Val>> attrs_;
  std::vector<std::string_view> list_items_;  // backing store of list attributes
  std::span<const EventRef> events_;          // own_events_, or the store's copy
  std::vector<EventRef> own_events_;
  const uint8_t* blob_ = nullptr;
  int64_t props_shift_ = 0;
  const Interner* interner_ = nullptr;
};

}  // namespace segd
