#include "core/interner.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace segd {
namespace {

using namespace std::string_literals;

TEST_CASE("Interner gives each string one dense id and gives the string back",
          "[core][interner]") {
  Interner interner;
  CHECK_FALSE(interner.Find("country").has_value());
  const uint32_t country = interner.Intern("country");
  const uint32_t url = interner.Intern("url");
  CHECK(country == 0);
  CHECK(url == 1);
  CHECK(interner.Intern("country") == country);
  CHECK(interner.Find("country") == country);
  CHECK(interner.Find("country", Interner::Hash("country")) == country);  // hashed ahead
  CHECK_FALSE(interner.Find("city", Interner::Hash("city")).has_value());
  CHECK(interner.Get(url) == "url");
  CHECK(interner.size() == 2);
}

TEST_CASE("Interner tells apart strings that differ only in size, padding or past 15 bytes",
          "[core][interner]") {
  // Sizes around 15 bytes (std::string's inline capacity, and a natural bound for a
  // table keyed by short strings held whole), embedded and trailing zeros: each of these
  // must be its own string.
  const std::vector<std::string> strings = {
      ""s,
      "\0"s,
      "\0\0"s,
      "a"s,
      "a\0"s,
      "a\0\0"s,
      "abcdefghijklmn"s,     // 14
      "abcdefghijklmno"s,    // 15: the longest short key
      "abcdefghijklmn\0"s,   // 15, ending in a zero
      "abcdefghijklmnop"s,   // 16: the shortest long key
      "abcdefghijklmno\0"s,  // 16, ending in a zero
      "abcdefghijklmnopq"s,
      std::string(15, '\x0f'),  // every byte equal to the size byte
      std::string(14, '\x0f'),
      std::string(16, '\x0f'),
      "\xff\xfe"s,
      std::string(1000, 'x'),
  };
  Interner interner;
  for (size_t i = 0; i < strings.size(); ++i) {
    INFO("string " << i);
    CHECK_FALSE(interner.Find(strings[i]).has_value());
    CHECK(interner.Intern(strings[i]) == i);
  }
  for (size_t i = 0; i < strings.size(); ++i) {
    INFO("string " << i);
    CHECK(interner.Find(strings[i]) == i);
    CHECK(interner.Intern(strings[i]) == i);
    CHECK(interner.Get(static_cast<uint32_t>(i)) == strings[i]);
  }
  CHECK(interner.size() == strings.size());
}

TEST_CASE("Interner agrees with a map over many random strings, and its views stay valid",
          "[core][interner]") {
  std::mt19937_64 rng(7);
  Interner interner;
  std::map<std::string, uint32_t> model;
  std::vector<std::string_view> views;  // taken as each string was interned
  for (int i = 0; i < 50'000; ++i) {
    // Sizes 0-40 over a small alphabet with zeros, so that strings repeat, short and
    // long ones alike.
    std::string s(rng() % 41, '\0');
    for (char& c : s) c = "\0abc"[rng() % 4];
    const auto [it, inserted] = model.try_emplace(s, static_cast<uint32_t>(model.size()));
    if (rng() % 2 == 0) {
      const std::optional<uint32_t> found = interner.Find(s);
      CHECK(found == (inserted ? std::nullopt : std::optional<uint32_t>(it->second)));
      if (!found) {
        CHECK(interner.Intern(s) == it->second);
        views.push_back(interner.Get(it->second));
      }
    } else {
      const size_t before = interner.size();
      CHECK(interner.Intern(s) == it->second);
      if (interner.size() > before) views.push_back(interner.Get(it->second));
    }
  }
  REQUIRE(interner.size() == model.size());
  REQUIRE(views.size() == model.size());
  for (const auto& [s, id] : model) {
    CHECK(interner.Find(s) == id);
    CHECK(views[id] == s);
    CHECK(views[id].data() == interner.Get(id).data());
  }
  CHECK(interner.MemoryBytes() > 0);
}

}  // namespace
}  // namespace segd
