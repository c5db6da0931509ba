#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace segd {

// The kinds of SPEC §1. A time is an int of milliseconds in rules, but keeps its
// kind in storage so that GetProfile and Export return what was written.
enum class ValueKind : uint8_t { kString, kInt, kFloat, kBool, kTime, kList };

std::string_view ValueKindName(ValueKind kind);

// Milliseconds since the Unix epoch, as a distinct type so that Value can tell a time
// from an int.
struct TimeMs {
  int64_t ms = 0;
  friend bool operator==(TimeMs, TimeMs) = default;
};

// An owned attribute or property value, as it crosses the engine's API (updates in,
// profiles out). Inside the engine values are stored encoded (see profile_codec.h).
class Value {
 public:
  Value() : v_(int64_t{0}) {}
  static Value String(std::string s) { return Value(Rep(std::in_place_index<0>, std::move(s))); }
  static Value Int(int64_t i) { return Value(Rep(std::in_place_index<1>, i)); }
  static Value Float(double f) { return Value(Rep(std::in_place_index<2>, f)); }
  static Value Bool(bool b) { return Value(Rep(std::in_place_index<3>, b)); }
  static Value Time(int64_t ms) { return Value(Rep(std::in_place_index<4>, TimeMs{ms})); }
  static Value List(std::vector<std::string> items) {
    return Value(Rep(std::in_place_index<5>, std::move(items)));
  }

  ValueKind kind() const { return static_cast<ValueKind>(v_.index()); }
  const std::string& string_value() const { return std::get<0>(v_); }
  int64_t int_value() const { return std::get<1>(v_); }
  double float_value() const { return std::get<2>(v_); }
  bool bool_value() const { return std::get<3>(v_); }
  int64_t time_value() const { return std::get<4>(v_).ms; }
  const std::vector<std::string>& list_value() const { return std::get<5>(v_); }

  friend bool operator==(const Value&, const Value&) = default;
  // Two values of one kind swap their contents (a decoder sorting a map's entries by
  // name swaps pairs of strings), where std::swap would move three times.
  friend void swap(Value& a, Value& b) noexcept { a.v_.swap(b.v_); }

 private:
  using Rep = std::variant<std::string, int64_t, double, bool, TimeMs, std::vector<std::string>>;
  explicit Value(Rep v) : v_(std::move(v)) {}
  Rep v_;
};

// Debug/explain rendering: strings quoted, lists in brackets, times as `t:<ms>`.
std::string ValueToString(const Value& v);

// A named value: attributes of a profile, properties of an event. Order is the order
// given by the caller; within one update a later entry for the same name wins.
using NamedValues = std::vector<std::pair<std::string, Value>>;

}  // namespace segd
