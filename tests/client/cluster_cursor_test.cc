#include "client/cluster_cursor.h"

#include <catch2/catch.hpp>
#include <string>

namespace segd::client {
namespace {

TEST_CASE("ClusterCursor round-trips through its printable encoding", "[client][cursor]") {
  ClusterCursor cursor;
  cursor.shards.push_back({"127.0.0.1:7070", std::string("\x00\x01\xff binary", 10)});
  cursor.shards.push_back({"[::1]:7071", ""});  // a shard to re-snapshot
  const std::string text = cursor.Encode();
  for (char c : text) {
    INFO("character " << int(static_cast<unsigned char>(c)));
    CHECK((std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'));
  }
  absl::StatusOr<ClusterCursor> decoded = ClusterCursor::Decode(text);
  REQUIRE(decoded.ok());
  REQUIRE(decoded->shards.size() == 2);
  CHECK(decoded->shards[0].address == "127.0.0.1:7070");
  CHECK(decoded->shards[0].cursor == cursor.shards[0].cursor);
  CHECK(decoded->shards[1].address == "[::1]:7071");
  CHECK(decoded->shards[1].cursor.empty());
}

TEST_CASE("ClusterCursor::Decode says what is wrong with a malformed cursor", "[client][cursor]") {
  ClusterCursor cursor;
  cursor.shards.push_back({"a:1", "xyz"});
  const std::string good = cursor.Encode();

  auto message = [](std::string_view text) {
    absl::StatusOr<ClusterCursor> c = ClusterCursor::Decode(text);
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(c.status().message());
  };
  CHECK(message("not base64!") == "cluster cursor: not URL-safe base64");
  CHECK(message("") == "cluster cursor: not a cluster cursor (bad magic)");
  CHECK(message(good.substr(0, good.size() - 2)).find("truncated") != std::string::npos);
  CHECK(message(good + "AAAA") == "cluster cursor: 3 bytes after the last shard");
}

}  // namespace
}  // namespace segd::client
