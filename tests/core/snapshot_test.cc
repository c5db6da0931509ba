#include "core/snapshot.h"

#include <catch2/catch.hpp>

namespace segd {
namespace {

Snapshot::Group MakeGroup(std::string segment, int64_t time, std::vector<std::string> keys) {
  Snapshot::Group g;
  g.segment = std::move(segment);
  g.time = time;
  for (const std::string& k : keys) {
    g.keys += k;
    g.ends.push_back(static_cast<uint32_t>(g.keys.size()));
  }
  return g;
}

TEST_CASE("Snapshot reads its members out in batches across groups, skipping empty ones",
          "[core][snapshot]") {
  Snapshot snap;
  snap.groups.push_back(MakeGroup("a", 5, {"k1", "key22", "k"}));
  snap.groups.push_back(MakeGroup("b", 5, {}));
  snap.groups.push_back(MakeGroup("c", 7, {"z"}));
  CHECK(snap.size() == 4);

  Snapshot::Position pos;
  std::vector<Change> out;
  CHECK(snap.Read(&pos, 2, &out) == 2);
  CHECK(snap.Read(&pos, 2, &out) == 2);
  CHECK(snap.Read(&pos, 2, &out) == 0);
  const std::vector<Change> want = {
      {"k1", "a", ChangeKind::kEnter, 5, Cause::kSnapshot},
      {"key22", "a", ChangeKind::kEnter, 5, Cause::kSnapshot},
      {"k", "a", ChangeKind::kEnter, 5, Cause::kSnapshot},
      {"z", "c", ChangeKind::kEnter, 7, Cause::kSnapshot},
  };
  CHECK(out == want);

  Snapshot empty;
  Snapshot::Position start;
  CHECK(empty.size() == 0);
  CHECK(empty.Read(&start, 10, &out) == 0);
}

}  // namespace
}  // namespace segd
