#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace segd::client {

// The consistent-hash ring that maps a profile key to its shard (SPEC §6), exactly as
// libmemcached's ketama does with MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED and equal weights:
// every server puts 160 points on a ring of 32-bit hashes, four per MD5 digest of the
// server's name ("host:port-i", or "host-i" for memcached's default port 11211), and a
// key goes to the first point at or after the little-endian first word of the MD5 of
// the key, wrapping around. Any memcached-ketama client with the same server list thus
// routes every key to the same shard.
//
// A server is "host:port" (an IPv6 host in brackets, "[::1]:7070"; it is named without
// them, as libmemcached is given the bare host). A server with no port, or one that is
// not a number below 65536, is taken as a host on port 11211, as libmemcached does.
//
// Thread safety: immutable once built; all methods may be called from any thread.
class Ring {
 public:
  // REQUIRES: servers is not empty.
  explicit Ring(std::vector<std::string> servers);

  // The index in servers() of the shard that holds `key`.
  int ShardOf(std::string_view key) const;
  const std::string& ServerOf(std::string_view key) const { return servers_[ShardOf(key)]; }

  const std::vector<std::string>& servers() const { return servers_; }
  size_t size() const { return servers_.size(); }

 private:
  struct Point {
    uint32_t hash;
    int shard;
  };

  std::vector<std::string> servers_;
  std::vector<Point> points_;  // sorted by (hash, shard)
};

}  // namespace segd::client
