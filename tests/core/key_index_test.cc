#include "core/key_index.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace segd {
namespace {

// Keys live outside the index, as they do in the profile store: here in a vector
// indexed by slot.
struct KeyOfVector {
  const std::vector<std::string>* keys;
  std::string_view operator()(uint32_t slot) const { return (*keys)[slot]; }
};

using Index = KeyIndex<KeyOfVector>;

TEST_CASE("KeyIndex finds what was inserted and nothing else", "[core][key_index]") {
  std::vector<std::string> keys;
  Index index(KeyOfVector{&keys});
  CHECK_FALSE(index.Find("u1", Index::Hash("u1")).has_value());
  CHECK_FALSE(index.Candidate(Index::Hash("u1")).has_value());
  for (uint32_t i = 0; i < 1000; ++i) {
    keys.push_back("u" + std::to_string(i));
    index.Insert(i, Index::Hash(keys.back()));
  }
  CHECK(index.size() == 1000);
  for (uint32_t i = 0; i < 1000; ++i) {
    const std::string& k = keys[i];
    CHECK(index.Find(k, Index::Hash(k)) == i);
    CHECK(index.Candidate(Index::Hash(k)) == i);
  }
  CHECK_FALSE(index.Find("u1000", Index::Hash("u1000")).has_value());
  CHECK_FALSE(index.Find("", Index::Hash("")).has_value());
  CHECK(index.MemoryBytes() >= 1000 * sizeof(uint64_t));
}

// It grows by half at 3/4 full: from then on between 1/2 and 3/4 full, whatever the size.
TEST_CASE("KeyIndex stays between half and three quarters full as it grows",
          "[core][key_index]") {
  std::vector<std::string> keys;
  Index index(KeyOfVector{&keys});
  for (uint32_t slot = 0; slot < 100'000; ++slot) {
    keys.push_back("u" + std::to_string(slot));
    index.Insert(slot, Index::Hash(keys.back()));
    const double entries = static_cast<double>(index.MemoryBytes()) / sizeof(uint64_t);
    const double load = static_cast<double>(index.size()) / entries;
    if (slot >= 12) REQUIRE(load >= 0.5);
    REQUIRE(load <= 0.75);
  }
  for (uint32_t slot = 0; slot < 100'000; slot += 997) {
    REQUIRE(index.Find(keys[slot], Index::Hash(keys[slot])) == slot);
  }
}

// Random inserts and erases against std::map, in a table small enough that runs of
// occupied buckets are long and wrap around its end: backward-shift deletion must keep
// every remaining key reachable.
TEST_CASE("KeyIndex agrees with a map under random inserts and erases", "[core][key_index]") {
  std::mt19937_64 rng(301);
  std::vector<std::string> keys;  // by slot; "" for a free slot
  std::vector<uint32_t> free_slots;
  std::map<std::string, uint32_t> model;
  Index index(KeyOfVector{&keys});
  for (int step = 0; step < 200'000; ++step) {
    const std::string key = "k" + std::to_string(rng() % 3000);
    auto it = model.find(key);
    if (it == model.end()) {
      uint32_t slot;
      if (!free_slots.empty()) {
        slot = free_slots.back();
        free_slots.pop_back();
        keys[slot] = key;
      } else {
        slot = static_cast<uint32_t>(keys.size());
        keys.push_back(key);
      }
      index.Insert(slot, Index::Hash(key));
      model.emplace(key, slot);
    } else if (rng() % 8 == 0) {
      index.Erase(it->second, Index::Hash(key));
      keys[it->second].clear();
      free_slots.push_back(it->second);
      model.erase(it);
    }
    if (step % 10'000 == 0 || step == 199'999) {
      INFO("step " << step);
      REQUIRE(index.size() == model.size());
      for (uint32_t i = 0; i < 3000; ++i) {
        const std::string k = "k" + std::to_string(i);
        auto m = model.find(k);
        const std::optional<uint32_t> got = index.Find(k, Index::Hash(k));
        if (m == model.end()) {
          REQUIRE_FALSE(got.has_value());
        } else {
          REQUIRE(got == m->second);
        }
      }
    }
  }
}

}  // namespace
}  // namespace segd
