#pragma once

// Helpers shared by the ProfileStore tests.
#include <catch2/catch.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/profile_store.h"

namespace segd::store_testing {

inline constexpr int64_t kNow = 1'700'000'000'000;
inline constexpr int64_t kDay = kMsPerDay;

inline EngineOptions Options(uint32_t max_events = 1024) {
  EngineOptions o;
  o.max_events = max_events;
  return o;
}

inline Event Ev(std::string type, int64_t time, std::string id = "", NamedValues props = {}) {
  Event e;
  e.type = std::move(type);
  e.time = time;
  e.id = std::move(id);
  e.properties = std::move(props);
  return e;
}

inline ProfileUpdate Upd(std::string key) {
  ProfileUpdate u;
  u.key = std::move(key);
  return u;
}

inline AppliedUpdate MustApply(ProfileStore& store, const ProfileUpdate& u, int64_t now = kNow) {
  absl::StatusOr<AppliedUpdate> r = store.Apply(u, now);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

inline ProfileData ReadKey(const ProfileStore& store, std::string_view key, int64_t now = kNow) {
  std::optional<Slot> slot = store.Find(key);
  REQUIRE(slot.has_value());
  return store.Read(*slot, now);
}

inline std::vector<int64_t> Times(const ProfileData& p) {
  std::vector<int64_t> out;
  for (const Event& e : p.events) out.push_back(e.time);
  return out;
}

inline std::vector<std::string> Ids(const ProfileData& p) {
  std::vector<std::string> out;
  for (const Event& e : p.events) out.push_back(e.id);
  return out;
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

inline std::vector<std::string> Names(const ProfileStore& store, std::span<const uint32_t> ids) {
  std::vector<std::string> out;
  for (uint32_t id : ids) out.emplace_back(store.interner().Get(id));
  std::sort(out.begin(), out.end());
  return out;
}

// ---- Value kinds ----

}  // namespace segd::store_testing
