// A borrowed profile or update (core/profile_ref.h), as the Replay and Stream RPCs decode
// them, replaces or applies and is rejected exactly as its owned copy is.
#include "core/profile_ref.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <deque>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/profile_store.h"
#include "tests/core/profile_store_fixture.h"

namespace segd {
namespace {

using namespace store_testing;  // NOLINT: test helpers

// Borrowed views of owned profiles; what they point to lives as long as this.
class Borrowed {
 public:
  ProfileRef Of(const ProfileData& p) {
    ProfileRef ref;
    ref.key = p.key;
    ref.attributes = Entries(p.attributes);
    ref.events = Events(p.events);
    return ref;
  }
  UpdateRef Of(const ProfileUpdate& u) {
    UpdateRef ref;
    ref.key = u.key;
    ref.set = Entries(u.set);
    std::vector<std::string_view>& unset = lists_.emplace_back();
    for (const std::string& name : u.unset) unset.push_back(name);
    ref.unset = unset;
    ref.increment = Entries(u.increment);
    ref.events = Events(u.events);
    ref.del = u.del;
    return ref;
  }

 private:
  std::span<const EventRef> Events(const std::vector<Event>& in) {
    std::vector<EventRef>& events = events_.emplace_back();
    for (const Event& e : in) events.push_back({e.type, e.time, e.id, Entries(e.properties)});
    return events;
  }
  std::span<const NamedValueRef> Entries(const NamedValues& values) {
    std::vector<NamedValueRef>& out = entries_.emplace_back();
    for (const auto& [name, value] : values) out.emplace_back(name, Of(value));
    return out;
  }
  ValueRef Of(const Value& v) {
    switch (v.kind()) {
      case ValueKind::kString:
        return ValueRef::String(v.string_value());
      case ValueKind::kInt:
        return ValueRef::Int(v.int_value());
      case ValueKind::kFloat:
        return ValueRef::Float(v.float_value());
      case ValueKind::kBool:
        return ValueRef::Bool(v.bool_value());
      case ValueKind::kTime:
        return ValueRef::Time(v.time_value());
      case ValueKind::kList: {
        std::vector<std::string_view>& items = lists_.emplace_back();
        for (const std::string& item : v.list_value()) items.push_back(item);
        return ValueRef::List(items);
      }
    }
    return ValueRef();
  }

  // Deques: a vector taken a view of never moves.
  std::deque<std::vector<NamedValueRef>> entries_;
  std::deque<std::vector<EventRef>> events_;
  std::deque<std::vector<std::string_view>> lists_;
};

// Random profiles, valid and not: bad names and UTF-8, NaN and Inf, lists in events,
// duplicate names and event ids, times past retention or too far ahead.
class RandomProfiles {
 public:
  // with_nan: floats may be NaN (which no profile equals, not even itself).
  RandomProfiles(uint64_t seed, bool with_nan) : rng_(seed), with_nan_(with_nan) {}

  ProfileData Next() {
    ProfileData p;
    p.key = OneIn(40) ? "\xff" : "k" + std::to_string(Below(30));
    for (size_t n = Below(7); n > 0; --n) p.attributes.emplace_back(Name(), RandomValue());
    for (size_t n = Below(9); n > 0; --n) p.events.push_back(RandomEvent());
    return p;
  }

  // Updates of the same keys: set, unset and increment (of numbers, now and then of
  // something else, now and then overflowing) and events; never a delete, which the
  // store does not take.
  ProfileUpdate NextUpdate() {
    ProfileUpdate u;
    u.key = OneIn(40) ? "\xff" : "k" + std::to_string(Below(30));
    for (size_t n = Below(3); n > 0; --n) u.set.emplace_back(Name(), RandomValue());
    for (size_t n = Below(2); n > 0; --n) u.unset.push_back(Name());
    for (size_t n = Below(3); n > 0; --n) {
      Value delta = OneIn(8)   ? RandomValue()
                    : OneIn(2) ? Value::Int(static_cast<int64_t>(Below(1000)) - 500)
                               : Value::Float(static_cast<double>(Below(1000)) / 8);
      u.increment.emplace_back(Name(), std::move(delta));
    }
    for (size_t n = Below(3); n > 0; --n) u.events.push_back(RandomEvent());
    return u;
  }

 private:
  bool OneIn(uint64_t n) { return rng_() % n == 0; }
  uint64_t Below(uint64_t n) { return rng_() % n; }

  Event RandomEvent() {
      Event e;
      e.type = OneIn(50) ? "" : std::string(1, static_cast<char>('a' + Below(4)));
      const int64_t times[] = {0,
                               kNow - 1,
                               kNow - static_cast<int64_t>(Below(5)) * kDay,
                               kNow - 40 * kDay,
                               kNow + 2 * kDay,
                               -5};
      e.time = OneIn(10) ? times[Below(6)] : kNow - static_cast<int64_t>(Below(100000));
      if (OneIn(3)) e.id = "id" + std::to_string(Below(3));
      if (OneIn(60)) e.id = "\xfe";
      for (size_t m = Below(4); m > 0; --m) e.properties.emplace_back(Name(), RandomValue());
      return e;
  }

  std::string Name() {
    if (OneIn(60)) return "";
    if (OneIn(60)) return std::string(129, 'n');
    if (OneIn(60)) return "bad\xc3";
    return std::string(1, static_cast<char>('p' + Below(6)));
  }

  Value RandomValue() {
    switch (Below(7)) {
      case 0:
        return Value::String(OneIn(30) ? "\xc3\x28" : "v" + std::to_string(Below(20)));
      case 1:
        return Value::Int(static_cast<int64_t>(rng_()));
      case 2: {
        const double special[] = {INFINITY, -INFINITY, 19.99, -0.0, NAN};  // NaN last
        return Value::Float(OneIn(10) ? special[Below(with_nan_ ? 5 : 4)]
                                      : static_cast<double>(Below(1000)) / 8);
      }
      case 3:
        return Value::Bool(OneIn(2));
      case 4:
        return Value::Time(kNow - static_cast<int64_t>(Below(1000)));
      case 5: {
        std::vector<std::string> items;
        for (size_t n = Below(4); n > 0; --n)
          items.push_back(OneIn(20) ? "\xff" : "t" + std::to_string(Below(5)));
        return Value::List(std::move(items));
      }
      default:
        return Value::String("long value of more than sixteen bytes " + std::to_string(Below(50)));
    }
  }

  std::mt19937_64 rng_;
  bool with_nan_;
};

// What a store fed a borrowed profile or update did against what one fed its owned copy
// did: the same status and, if accepted, the same result and read-back. Returns whether
// it was rejected.
template <typename Result>  // AppliedUpdate or ReplacedProfile
bool CheckSameOutcome(const absl::StatusOr<Result>& got, const absl::StatusOr<Result>& want,
                      const ProfileStore& by_ref, const ProfileStore& owned) {
  REQUIRE(got.status() == want.status());
  if (!want.ok()) return true;
  CHECK(got->slot == want->slot);
  CHECK(got->created == want->created);
  CHECK(got->events_added == want->events_added);
  if constexpr (std::is_same_v<Result, AppliedUpdate>) {
    CHECK(got->attributes == want->attributes);
    CHECK(got->event_types == want->event_types);
    CHECK(got->events_appended == want->events_appended);
    CHECK(got->events_dropped == want->events_dropped);
  }
  REQUIRE(by_ref.Read(got->slot, kNow) == owned.Read(want->slot, kNow));
  return false;
}

// After 5,000 inputs: both outcomes were exercised, many times, and the stores agree.
void CheckStoresAlike(int rejected, const ProfileStore& by_ref, const ProfileStore& owned) {
  CHECK(rejected > 500);
  CHECK(rejected < 4500);
  CHECK(by_ref.size() == owned.size());
  CHECK(by_ref.event_count() == owned.event_count());
}

TEST_CASE("A borrowed profile reads back as the owned profile it views", "[core][ref]") {
  RandomProfiles random(11, /*with_nan=*/false);
  Borrowed borrowed;
  for (int i = 0; i < 500; ++i) {
    const ProfileData p = random.Next();
    CHECK(ToProfileData(borrowed.Of(p)) == p);
  }
}

TEST_CASE("A borrowed profile replaces, and is rejected, as its owned copy is", "[core][ref]") {
  EngineOptions options = Options(6);  // histories longer than this keep their newest
  options.retention_ms = 30 * kDay;
  ProfileStore owned(options), by_ref(options);
  RandomProfiles random(12, /*with_nan=*/true);
  Borrowed borrowed;
  int rejected = 0;
  for (int i = 0; i < 5000; ++i) {
    const ProfileData p = random.Next();
    const absl::StatusOr<ReplacedProfile> want = owned.Replace(p, kNow);
    const absl::StatusOr<ReplacedProfile> got = by_ref.Replace(borrowed.Of(p), kNow);
    INFO("profile " << i << ": " << want.status().ToString());
    rejected += CheckSameOutcome(got, want, by_ref, owned);
  }
  CheckStoresAlike(rejected, by_ref, owned);
}

TEST_CASE("A borrowed update reads back as the owned update it views", "[core][ref]") {
  RandomProfiles random(13, /*with_nan=*/false);
  Borrowed borrowed;
  for (int i = 0; i < 500; ++i) {
    const ProfileUpdate u = random.NextUpdate();
    const ProfileUpdate back = ToProfileUpdate(borrowed.Of(u));
    CHECK(back.key == u.key);
    CHECK(back.set == u.set);
    CHECK(back.unset == u.unset);
    CHECK(back.increment == u.increment);
    CHECK(back.events == u.events);
    CHECK(back.del == u.del);
  }
}

TEST_CASE("A borrowed update applies, and is rejected, as its owned copy is", "[core][ref]") {
  EngineOptions options = Options(6);
  options.retention_ms = 30 * kDay;
  ProfileStore owned(options), by_ref(options);
  RandomProfiles random(14, /*with_nan=*/true);
  Borrowed borrowed;
  int rejected = 0;
  for (int i = 0; i < 5000; ++i) {
    // Now and then a whole profile, so that updates meet attributes of every kind.
    if (i % 10 == 0) {
      const ProfileData p = random.Next();
      REQUIRE(by_ref.Replace(p, kNow).status() == owned.Replace(p, kNow).status());
    }
    const ProfileUpdate u = random.NextUpdate();
    const UpdateRef ref = borrowed.Of(u);
    CHECK(by_ref.Validate(ref, kNow) == owned.Validate(u, kNow));
    const absl::StatusOr<AppliedUpdate> want = owned.Apply(u, kNow);
    const absl::StatusOr<AppliedUpdate> got = by_ref.Apply(ref, kNow);
    INFO("update " << i << ": " << want.status().ToString());
    rejected += CheckSameOutcome(got, want, by_ref, owned);
  }
  CheckStoresAlike(rejected, by_ref, owned);
}

}  // namespace
}  // namespace segd
