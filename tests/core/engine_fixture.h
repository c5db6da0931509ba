#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "core/engine.h"

namespace segd::testing {

inline constexpr int64_t kT0 = 1'700'000'000'000;  // 2023-11-14T22:13:20Z
inline constexpr int64_t kSecond = 1000;
inline constexpr int64_t kMinute = 60 * kSecond;
inline constexpr int64_t kHour = 60 * kMinute;
inline constexpr int64_t kDay = 24 * kHour;

inline Event MakeEvent(std::string type, int64_t time, NamedValues props = {},
                       std::string id = "") {
  return Event{std::move(type), time, std::move(id), std::move(props)};
}

inline ProfileUpdate KeyOnly(std::string key, bool del = false) {
  ProfileUpdate u;
  u.key = std::move(key);
  u.del = del;
  return u;
}

inline ProfileData Profile(std::string key, NamedValues attributes) {
  ProfileData p;
  p.key = std::move(key);
  p.attributes = std::move(attributes);
  return p;
}

// An engine on a manual clock at kT0, with helpers that fail the test on errors.
class EngineFixture {
 public:
  explicit EngineFixture(EngineOptions options = {}, int shards = 2)
      : clock(kT0), engine(options, shards, clock) {}

  ManualClock clock;
  Engine engine;

  void Put(const std::string& id, const std::string& rule) {
    absl::StatusOr<PutSegmentResult> r = engine.PutSegment({id, rule, ""}, false);
    INFO(id << ": " << rule);
    REQUIRE(r.status().message() == "");
    REQUIRE(r.ok());
  }

  void Apply(ProfileUpdate u) {
    BatchResult r = engine.Apply(std::vector<ProfileUpdate>{std::move(u)});
    INFO((r.errors.empty() ? std::string() : r.errors[0].message));
    REQUIRE(r.errors.empty());
  }

  void Set(const std::string& key, NamedValues attrs) {
    ProfileUpdate u;
    u.key = key;
    u.set = std::move(attrs);
    Apply(std::move(u));
  }

  void AddEvent(const std::string& key, Event e) {
    ProfileUpdate u;
    u.key = key;
    u.events.push_back(std::move(e));
    Apply(std::move(u));
  }

  // Whether `rule` holds for `key` now (an ad-hoc evaluation through Explain).
  bool Holds(const std::string& key, const std::string& rule) {
    absl::StatusOr<ExplainResult> r = engine.Explain(key, "", rule);
    INFO(rule << " -> " << r.status().message());
    REQUIRE(r.ok());
    return r->matched;
  }

  bool IsMember(const std::string& key, const std::string& segment) {
    absl::StatusOr<ProfileData> p = engine.GetProfile(key);
    REQUIRE(p.ok());
    for (const std::string& s : p->segments) {
      if (s == segment) return true;
    }
    return false;
  }

  void SetTime(int64_t t) { REQUIRE(engine.SetTime(t).ok()); }

  // Every change since the last call (or the start).
  std::vector<Change> TakeChanges() {
    std::vector<Change> out;
    REQUIRE(engine.ReadChanges(&cursor_, 1 << 30, nullptr, &out).ok());
    return out;
  }

 private:
  Cursor cursor_ = engine.CurrentCursor();
};

inline std::string Describe(const Change& c) {
  return c.key + " " + std::string(ChangeKindName(c.kind)) + " " + c.segment + " @" +
         std::to_string(c.time) + " " + std::string(CauseName(c.cause));
}

}  // namespace segd::testing
