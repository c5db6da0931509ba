#include "core/text.h"

#include <catch2/catch.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace segd {
namespace {

using namespace std::string_literals;

// Every string of `sizes` over a small alphabet with zeros, and each of them with one
// byte changed at every position: the cases the word loads of HashString and
// SameString must tell apart (first, middle and last bytes; overlapping words).
std::vector<std::string> Neighbours(std::mt19937_64& rng, size_t size) {
  std::string s(size, '\0');
  for (char& c : s) c = "\0ab\xff"[rng() % 4];
  std::vector<std::string> out = {s};
  for (size_t i = 0; i < size; ++i) {
    std::string t = s;
    t[i] = static_cast<char>(t[i] ^ 0x01);
    out.push_back(t);
    t[i] = static_cast<char>(t[i] ^ 0x81);
    out.push_back(t);
  }
  return out;
}

TEST_CASE("IsValidUtf8 and IsAscii see every byte, at every size and position", "[core][text]") {
  for (size_t size = 0; size <= 40; ++size) {
    INFO("size " << size);
    const std::string ascii(size, 'a');
    CHECK(IsAscii(ascii));
    CHECK(IsValidUtf8(ascii));
    for (size_t at = 0; at < size; ++at) {
      INFO("at " << at);
      std::string high = ascii;
      high[at] = '\x80';  // a continuation byte alone
      CHECK_FALSE(IsAscii(high));
      CHECK_FALSE(IsValidUtf8(high));
      if (at + 2 <= size) {
        std::string two = ascii;
        two.replace(at, 2, "\xC3\xA9");  // é
        CHECK_FALSE(IsAscii(two));
        CHECK(IsValidUtf8(two));
        two.replace(at, 2, "\xC0\x80");  // an overlong NUL
        CHECK_FALSE(IsValidUtf8(two));
      }
      if (at + 3 <= size) {
        std::string three = ascii;
        three.replace(at, 3, "\xED\xA0\x80");  // a surrogate
        CHECK_FALSE(IsValidUtf8(three));
        three.replace(at, 3, "\xE2\x82\xAC");  // €
        CHECK(IsValidUtf8(three));
      }
    }
    if (size >= 1) {
      std::string cut = ascii;
      cut.back() = '\xE2';  // a sequence cut short at the end
      CHECK_FALSE(IsValidUtf8(cut));
    }
  }
}

TEST_CASE("SameString is string equality at every size, with zeros and high bytes",
          "[core][text]") {
  std::mt19937_64 rng(11);
  for (size_t size = 0; size <= 40; ++size) {
    INFO("size " << size);
    const std::vector<std::string> strings = Neighbours(rng, size);
    for (const std::string& a : strings) {
      for (const std::string& b : strings) CHECK(SameString(a, b) == (a == b));
      CHECK_FALSE(SameString(a, a + "x"));
      CHECK_FALSE(SameString(a + '\0', a));
    }
  }
  CHECK(SameString("", ""));
  CHECK_FALSE(SameString("a\0"s, "a\0\0"s));
}

TEST_CASE("StringLess orders strings as std::string_view does", "[core][text]") {
  std::mt19937_64 rng(13);
  std::vector<std::string> strings;
  for (size_t size = 0; size <= 40; ++size) {
    for (std::string& s : Neighbours(rng, size)) strings.push_back(std::move(s));
  }
  // Prefixes of one another, and bytes above 0x7f (which must order as unsigned).
  for (const std::string& s : {"a"s, "ab"s, "abc"s, "abcd"s, "abcdefgh"s, "abcdefghi"s,
                               "abcdefghijklmnop"s, "abcdefghijklmnopq"s, "\x80"s, "\x7f"s}) {
    strings.push_back(s);
  }
  for (const std::string& a : strings) {
    for (const std::string& b : strings) {
      INFO("a " << a.size() << " bytes, b " << b.size() << " bytes");
      CHECK(StringLess(a, b) == (std::string_view(a) < std::string_view(b)));
    }
  }
}

TEST_CASE("HashString gives equal strings one hash and near strings different ones",
          "[core][text]") {
  std::mt19937_64 rng(12);
  std::set<std::string> strings;
  for (size_t size = 0; size <= 80; ++size) {  // the short, middle and long forms
    for (std::string& s : Neighbours(rng, size)) strings.insert(std::move(s));
  }
  std::set<uint64_t> hashes;
  for (const std::string& s : strings) {
    CHECK(HashString(s) == HashString(std::string(s)));  // the bytes alone decide
    hashes.insert(HashString(s));
  }
  // 64-bit hashes of a few thousand distinct strings: a collision would be a flaw, not
  // bad luck.
  CHECK(hashes.size() == strings.size());
}

TEST_CASE("HashString spreads sequential keys over the low and the high bits", "[core][text]") {
  // Swiss tables take the low 7 bits and the rest; the key index the high 32.
  constexpr int kBuckets = 256;
  std::vector<int> low(kBuckets), high(kBuckets);
  constexpr int kKeys = 256'000;
  for (int i = 0; i < kKeys; ++i) {
    const uint64_t h = HashString("u" + std::to_string(i));
    ++low[h % kBuckets];
    ++high[h >> 56];
  }
  for (int b = 0; b < kBuckets; ++b) {
    INFO("bucket " << b);
    // 1,000 expected in each: six standard deviations either way.
    CHECK(low[b] > 810);
    CHECK(low[b] < 1190);
    CHECK(high[b] > 810);
    CHECK(high[b] < 1190);
  }
}

}  // namespace
}  // namespace segd
