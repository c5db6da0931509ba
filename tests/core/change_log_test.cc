#include "core/change_log.h"

#include <catch2/catch.hpp>

#include "core/cursor.h"

namespace segd {
namespace {

Change MakeChange(int i) {
  return Change{"k" + std::to_string(i), i % 2 ? "odd" : "even", ChangeKind::kEnter, i,
                Cause::kUpdate};
}

TEST_CASE("ChangeLog reads on from any held position", "[core][changes]") {
  ChangeLog log(100);
  std::vector<Change> batch;
  for (int i = 0; i < 10; ++i) batch.push_back(MakeChange(i));
  log.Append(batch);
  CHECK(log.begin() == 0);
  CHECK(log.end() == 10);
  std::vector<Change> out;
  absl::StatusOr<uint64_t> next = log.Read(3, 4, nullptr, &out);
  REQUIRE(next.ok());
  CHECK(*next == 7);
  REQUIRE(out.size() == 4);
  CHECK(out[0] == MakeChange(3));
  CHECK(out[3] == MakeChange(6));
  CHECK(log.Read(11, 4, nullptr, &out).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("ChangeLog's readers in place see what its copying reader sees", "[core][changes]") {
  ChangeLog log(5000);
  std::vector<Change> batch;
  for (int i = 0; i < 4500; ++i) batch.push_back(MakeChange(i));  // across a page
  log.Append(batch);
  const StringSet odd = {"odd"};
  for (const StringSet* filter : {static_cast<const StringSet*>(nullptr), &odd}) {
    std::vector<Change> copied, viewed;
    absl::StatusOr<uint64_t> a = log.Read(100, 4200, filter, &copied);
    absl::StatusOr<uint64_t> b =
        log.Read(100, 4200, filter, [&](const ChangeView& c) { viewed.push_back(c.ToChange()); });
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(*a == *b);
    CHECK(copied == viewed);
    CHECK(copied.size() == (filter == nullptr ? 4200u : 2100u));
  }
  int visited = 0;
  CHECK(log.Read(5000, 10, nullptr, [&](const ChangeView&) { ++visited; }).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(visited == 0);
}

TEST_CASE("ChangeLog filters by segment and counts skipped changes as read", "[core][changes]") {
  ChangeLog log(100);
  std::vector<Change> batch;
  for (int i = 0; i < 10; ++i) batch.push_back(MakeChange(i));
  log.Append(batch);
  StringSet odd = {"odd"};
  std::vector<Change> out;
  absl::StatusOr<uint64_t> next = log.Read(0, 4, &odd, &out);
  CHECK(*next == 4);
  REQUIRE(out.size() == 2);
  CHECK(out[0].key == "k1");
  CHECK(out[1].key == "k3");
}

TEST_CASE("ChangeLog keeps the newest changes up to its capacity", "[core][changes]") {
  ChangeLog log(5);
  for (int i = 0; i < 12; ++i) log.Append(std::vector<Change>{MakeChange(i)});
  CHECK(log.begin() == 7);
  CHECK(log.end() == 12);
  std::vector<Change> out;
  CHECK(log.Read(6, 10, nullptr, &out).status().code() == absl::StatusCode::kOutOfRange);
  REQUIRE(log.Read(7, 10, nullptr, &out).ok());
  CHECK(out.front() == MakeChange(7));
}

TEST_CASE("ChangeLog holds exactly its capacity over many pages, keys of any size",
          "[core][changes]") {
  // Pages hold 4,096 changes; the capacity here is not a multiple of that, appends come
  // one at a time and in runs that cross pages, and keys are 1 to 256 bytes.
  constexpr uint64_t kCapacity = 5'000;
  ChangeLog log(kCapacity);
  auto change = [](int i) {
    const std::string key = std::to_string(i) + std::string(static_cast<size_t>(i % 256), 'x');
    return Change{key.substr(0, 256), "s" + std::to_string(i % 3),
                  i % 2 ? ChangeKind::kExit : ChangeKind::kEnter, 1'000 + i,
                  i % 5 ? Cause::kUpdate : Cause::kTime};
  };
  int appended = 0;
  for (int run : {1, 4'095, 1, 1, 7'000, 3, 12'345}) {
    std::vector<Change> batch;
    for (int i = 0; i < run; ++i) batch.push_back(change(appended++));
    log.Append(batch);
    const uint64_t end = static_cast<uint64_t>(appended);
    CHECK(log.end() == end);
    CHECK(log.begin() == (end > kCapacity ? end - kCapacity : 0));
  }
  const uint64_t begin = log.begin();
  std::vector<Change> out;
  CHECK(log.Read(begin - 1, 10, nullptr, &out).status().code() == absl::StatusCode::kOutOfRange);
  absl::StatusOr<uint64_t> next = log.Read(begin, kCapacity + 10, nullptr, &out);
  REQUIRE(next.ok());
  CHECK(*next == log.end());
  REQUIRE(out.size() == kCapacity);
  for (size_t i = 0; i < out.size(); ++i) {
    const Change want = change(static_cast<int>(begin + i));
    if (out[i] != want) FAIL("position " << begin + i << ": " << out[i].key << " " << want.key);
  }
}

TEST_CASE("Cursors round-trip and reject damage", "[core][changes]") {
  Cursor c{0x1234567890abcdefULL, {0, 1, 300, uint64_t{1} << 40}};
  std::string bytes = EncodeCursor(c);
  absl::StatusOr<Cursor> back = DecodeCursor(bytes);
  REQUIRE(back.ok());
  CHECK(*back == c);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string damaged = bytes;
    damaged[i] ^= 0x40;
    CHECK(DecodeCursor(damaged).status().code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK_FALSE(DecodeCursor("").ok());
  CHECK_FALSE(DecodeCursor(bytes.substr(0, bytes.size() - 1)).ok());
}

}  // namespace
}  // namespace segd
