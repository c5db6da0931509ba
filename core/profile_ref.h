#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

#include "core/profile_update.h"
#include "core/value.h"

// Profiles and updates borrowed from memory someone else owns: what Replay and Apply take
// when they come straight from a request's bytes (server/wire_decode.h). Every string is
// a view and every list a span, so decoding a replayed profile or an update allocates
// nothing per profile or update, and the shard that stores it frees nothing.
//
// The names of the members are those of ProfileData, ProfileUpdate, Event and Value, so
// that the code that checks, applies and encodes them is one template for both forms.
namespace segd {

// A value of any kind, borrowed: a string's bytes and a list's items are not owned.
class ValueRef {
 public:
  ValueRef() : kind_(ValueKind::kInt), int_(0) {}
  static ValueRef String(std::string_view s) {
    return With(ValueKind::kString, &ValueRef::string_, Bytes{s.data(), s.size()});
  }
  static ValueRef Int(int64_t i) { return With(ValueKind::kInt, &ValueRef::int_, i); }
  static ValueRef Float(double f) { return With(ValueKind::kFloat, &ValueRef::float_, f); }
  static ValueRef Bool(bool b) { return With(ValueKind::kBool, &ValueRef::bool_, b); }
  static ValueRef Time(int64_t ms) { return With(ValueKind::kTime, &ValueRef::int_, ms); }
  static ValueRef List(std::span<const std::string_view> items) {
    return With(ValueKind::kList, &ValueRef::list_, Items{items.data(), items.size()});
  }

  ValueKind kind() const { return kind_; }
  std::string_view string_value() const { return {string_.data, string_.size}; }
  int64_t int_value() const { return int_; }
  double float_value() const { return float_; }
  bool bool_value() const { return bool_; }
  int64_t time_value() const { return int_; }
  std::span<const std::string_view> list_value() const { return {list_.data, list_.size}; }

 private:
  // Raw pointers and sizes rather than string_view and span, which a union cannot hold
  // without constructors; 24 bytes in all.
  struct Bytes {
    const char* data;
    size_t size;
  };
  struct Items {
    const std::string_view* data;
    size_t size;
  };

  // A value of `kind`, held in `member`.
  template <typename T>
  static ValueRef With(ValueKind kind, T ValueRef::*member, T value) {
    ValueRef v;
    v.kind_ = kind;
    v.*member = value;
    return v;
  }

  ValueKind kind_;
  union {
    int64_t int_;  // kInt, kTime
    double float_;
    bool bool_;
    Bytes string_;
    Items list_;
  };
};

using NamedValueRef = std::pair<std::string_view, ValueRef>;

struct EventRef {
  std::string_view type;
  int64_t time = 0;
  std::string_view id;
  std::span<const NamedValueRef> properties;
};

// The memory a borrowed profile or update was decoded from and into, for the store to
// load ahead of use: a shard reads it first from another core than the decoder's.
struct RefMemory {
  std::string_view wire;   // its message in the request's bytes
  std::string_view arena;  // its entries, events and lists (the arena's copies), if
                           // laid out together; else empty
};

struct ProfileRef {
  std::string_view key;
  std::span<const NamedValueRef> attributes;
  std::span<const EventRef> events;
  RefMemory memory;
};

struct UpdateRef {
  std::string_view key;
  std::span<const NamedValueRef> set;
  std::span<const std::string_view> unset;
  std::span<const NamedValueRef> increment;
  std::span<const EventRef> events;
  bool del = false;
  RefMemory memory;
};

// The owned copies, as a client would read them back (tests compare the two forms).
Value ToValue(const ValueRef& v);
ProfileData ToProfileData(const ProfileRef& p);
ProfileUpdate ToProfileUpdate(const UpdateRef& u);

}  // namespace segd
