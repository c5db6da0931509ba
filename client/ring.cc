#include "client/ring.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

// The ring is libmemcached's update_continuum() (hosts.cc) in weighted-ketama mode, and
// the lookup its dispatch_host(); the comments name what each step must match.
namespace segd::client {
namespace {

constexpr uint32_t kDefaultPort = 11211;  // MEMCACHED_DEFAULT_PORT
constexpr int kPointsPerServer = 160;     // MEMCACHED_POINTS_PER_SERVER_KETAMA
constexpr int kPointsPerHash = 4;         // one point per 32-bit word of an MD5 digest

using Digest = std::array<unsigned char, 16>;

const EVP_MD* Md5() {
  static const EVP_MD* const md5 = EVP_MD_fetch(nullptr, "MD5", nullptr);
  if (md5 == nullptr) {
    // The ring cannot exist without MD5 (a FIPS-only OpenSSL configuration lacks it).
    std::fputs("segd client: OpenSSL provides no MD5 digest, which ketama requires\n", stderr);
    std::abort();
  }
  return md5;
}

Digest Md5Of(std::string_view data) {
  Digest digest;
  unsigned int size = 0;
  const int ok = EVP_Digest(data.data(), data.size(), digest.data(), &size, Md5(), nullptr);
  assert(ok == 1 && size == digest.size());
  (void)ok;
  return digest;
}

// Word `i` (0..3) of a digest, little-endian: ketama_server_hash(); word 0 is also
// hashkit's MD5 hash of a key.
uint32_t Word(const Digest& d, int i) {
  const unsigned char* b = d.data() + 4 * i;
  return static_cast<uint32_t>(b[3]) << 24 | static_cast<uint32_t>(b[2]) << 16 |
         static_cast<uint32_t>(b[1]) << 8 | static_cast<uint32_t>(b[0]);
}

struct HostPort {
  std::string_view host;
  uint32_t port;
};

// What memcached_server_add(host, port) would be given for `server` (see ring.h), with
// its own defaults: an empty host is "localhost", port 0 is 11211.
HostPort SplitServer(std::string_view server) {
  HostPort hp{server, kDefaultPort};
  const size_t colon = server.rfind(':');
  uint32_t port = 0;
  if (colon != std::string_view::npos) {
    const std::string_view digits = server.substr(colon + 1);
    if (!digits.empty() && std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit) &&
        absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &port) && port <= 65535) {
      hp.host = server.substr(0, colon);
      if (port != 0) hp.port = port;
      if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') {
        hp.host = hp.host.substr(1, hp.host.size() - 2);
      }
    }
  }
  if (hp.host.empty()) hp.host = "localhost";
  return hp;
}

// The points each server gets. libmemcached computes this in single precision, which
// can round a server's share of 160 points down by a few; this is its expression, in
// the same float operations, with every weight 1.
uint32_t PointsPerServer(size_t servers) {
  const float pct = 1.0f / static_cast<float>(servers);
  const float share =
      static_cast<float>(pct * kPointsPerServer / 4 * static_cast<float>(servers) + 0.0000000001F);
  return static_cast<uint32_t>(std::floor(share) * 4);
}

}  // namespace

Ring::Ring(std::vector<std::string> servers) : servers_(std::move(servers)) {
  assert(!servers_.empty());
  const uint32_t points = PointsPerServer(servers_.size());
  points_.reserve(servers_.size() * points);
  for (size_t s = 0; s < servers_.size(); ++s) {
    const HostPort hp = SplitServer(servers_[s]);
    const absl::string_view host(hp.host.data(), hp.host.size());
    for (uint32_t i = 0; i < points / kPointsPerHash; ++i) {
      const std::string name = hp.port == kDefaultPort ? absl::StrCat(host, "-", i)
                                                       : absl::StrCat(host, ":", hp.port, "-", i);
      const Digest digest = Md5Of(name);
      for (int w = 0; w < kPointsPerHash; ++w) {
        points_.push_back(Point{Word(digest, w), static_cast<int>(s)});
      }
    }
  }
  // continuum_item_cmp: by value, then by server index.
  std::sort(points_.begin(), points_.end(), [](const Point& a, const Point& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.shard < b.shard;
  });
}

int Ring::ShardOf(std::string_view key) const {
  if (servers_.size() == 1) return 0;  // libmemcached does not hash with one server
  const uint32_t hash = Word(Md5Of(key), 0);
  auto it = std::lower_bound(points_.begin(), points_.end(), hash,
                             [](const Point& p, uint32_t h) { return p.hash < h; });
  if (it == points_.end()) it = points_.begin();
  return it->shard;
}

}  // namespace segd::client
