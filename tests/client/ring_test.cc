#include "client/ring.h"

#include <libmemcached/memcached.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace segd::client {
namespace {

struct Server {
  std::string host;  // as libmemcached is given it
  int port;          // 0: none in the ring's spelling (libmemcached then uses 11211)
};

// The ring's spelling of a server: host:port, an IPv6 host in brackets.
std::string Spell(const Server& s) {
  if (s.port == 0) return s.host;
  const bool ipv6 = s.host.find(':') != std::string::npos;
  return (ipv6 ? "[" + s.host + "]" : s.host) + ":" + std::to_string(s.port);
}

// libmemcached's own ketama over `servers`, weighted mode, as SPEC §6 names it.
class Libmemcached {
 public:
  explicit Libmemcached(const std::vector<Server>& servers) : memc_(memcached_create(nullptr)) {
    REQUIRE(memc_ != nullptr);
    REQUIRE(memcached_behavior_set(memc_, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1) ==
            MEMCACHED_SUCCESS);
    for (const Server& s : servers) {
      REQUIRE(memcached_server_add(memc_, s.host.c_str(), static_cast<in_port_t>(s.port)) ==
              MEMCACHED_SUCCESS);
    }
    REQUIRE(memcached_server_count(memc_) == servers.size());
  }
  ~Libmemcached() { memcached_free(memc_); }

  // The index of the server `key` maps to.
  int ServerOf(const std::string& key) const {
    return static_cast<int>(memcached_generate_hash(memc_, key.data(), key.size()));
  }

 private:
  memcached_st* memc_;
};

// Checks `keys` keys u0, u1, ... and `random_keys` random byte strings (fixed seed)
// against libmemcached; returns how many keys each server got.
std::vector<int> CheckAgainstLibmemcached(const std::vector<Server>& servers, int keys = 100'000,
                                          int random_keys = 10'000) {
  std::vector<std::string> spelled;
  for (const Server& s : servers) spelled.push_back(Spell(s));
  const Ring ring(spelled);
  const Libmemcached reference(servers);
  std::vector<int> per_server(servers.size(), 0);

  int mismatches = 0;
  auto check = [&](const std::string& key) {
    const int got = ring.ShardOf(key);
    const int want = reference.ServerOf(key);
    if (got != want && ++mismatches <= 5) {
      UNSCOPED_INFO("key \"" << key << "\": ring " << got << ", libmemcached " << want);
    }
    if (got >= 0 && got < static_cast<int>(servers.size())) ++per_server[got];
  };
  for (int i = 0; i < keys; ++i) check("u" + std::to_string(i));
  std::mt19937 rng(301);
  std::uniform_int_distribution<int> length(0, 64);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < random_keys; ++i) {
    std::string key(static_cast<size_t>(length(rng)), '\0');
    for (char& c : key) c = static_cast<char>(byte(rng));
    check(key);
  }
  CHECK(mismatches == 0);
  return per_server;
}

TEST_CASE("Ring maps keys as libmemcached's weighted ketama does", "[client][ring]") {
  SECTION("one server") {
    const std::vector<int> n = CheckAgainstLibmemcached({{"127.0.0.1", 7070}});
    CHECK(n[0] == 110'000);
  }
  SECTION("two servers") { CheckAgainstLibmemcached({{"10.0.0.1", 7070}, {"10.0.0.2", 7070}}); }
  SECTION("three servers, two on memcached's default port 11211") {
    CheckAgainstLibmemcached(
        {{"segd-a.example.com", 11211}, {"segd-b.example.com", 7071}, {"127.0.0.1", 11211}});
  }
  SECTION("five servers, one IPv6") {
    CheckAgainstLibmemcached({{"localhost", 7070},
                              {"localhost", 7071},
                              {"192.168.1.20", 11211},
                              {"::1", 7072},
                              {"shard-4.internal", 65535}});
  }
  SECTION("ten servers") {
    std::vector<Server> servers;
    for (int i = 1; i <= 10; ++i) {
      servers.push_back({"10.1.0." + std::to_string(i), i == 7 ? 11211 : 7000 + i});
    }
    const std::vector<int> n = CheckAgainstLibmemcached(servers);
    // Consistent hashing spreads keys roughly evenly: no server is starved or swamped.
    for (int count : n) {
      CHECK(count > 110'000 / 10 / 2);
      CHECK(count < 110'000 / 10 * 2);
    }
  }
}

TEST_CASE("Ring gives every cluster size the points libmemcached does", "[client][ring]") {
  // libmemcached computes each server's share of 160 points in single precision, which
  // rounds it down to 156 for some sizes (25, 47, 50, 55, 61); a wrong count moves keys.
  for (int size = 1; size <= 64; ++size) {
    std::vector<Server> servers;
    for (int i = 0; i < size; ++i) servers.push_back({"node" + std::to_string(i), 7070});
    INFO("servers: " << size);
    CheckAgainstLibmemcached(servers, 20'000, 0);
  }
}

TEST_CASE("Ring spells servers without a port as libmemcached's default", "[client][ring]") {
  // No port (or port 0) is memcached's 11211, named "host-i" on the ring; an empty
  // host is localhost.
  const Ring ring({"cachehost", "otherhost:0", ":7070"});
  const Libmemcached reference({{"cachehost", 0}, {"otherhost", 0}, {"", 7070}});
  for (int i = 0; i < 20'000; ++i) {
    const std::string key = "k" + std::to_string(i);
    REQUIRE(ring.ShardOf(key) == reference.ServerOf(key));
  }
}

TEST_CASE("Ring::ServerOf names the shard of ShardOf", "[client][ring]") {
  const Ring ring({"a:1", "b:2", "c:3"});
  REQUIRE(ring.size() == 3);
  REQUIRE(ring.servers() == std::vector<std::string>{"a:1", "b:2", "c:3"});
  for (int i = 0; i < 1000; ++i) {
    const std::string key = "user-" + std::to_string(i);
    CHECK(ring.ServerOf(key) == ring.servers()[ring.ShardOf(key)]);
  }
}

TEST_CASE("Ring does not depend on the order of its servers", "[client][ring]") {
  const Ring forward({"a:1", "b:2", "c:3", "d:4"});
  const Ring backward({"d:4", "c:3", "b:2", "a:1"});
  for (int i = 0; i < 20'000; ++i) {
    const std::string key = "u" + std::to_string(i);
    REQUIRE(forward.ServerOf(key) == backward.ServerOf(key));
  }
}

}  // namespace
}  // namespace segd::client
