#include "loadgen/update_stream.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <string>

#include "segd/v1/segd.pb.h"

namespace segd::load {
namespace {

constexpr uint64_t kProfiles = 10'000;

// A batch as the server would read it (UpdateBatch.updates, no seq).
v1::UpdateBatch Parse(const UpdateStream::Batch& batch) {
  v1::UpdateBatch parsed;
  REQUIRE(parsed.ParseFromString(batch.updates));
  return parsed;
}

TEST_CASE("UpdateStream batches parse as UpdateBatches of the standard update",
          "[loadgen][update_stream]") {
  UpdateStreamOptions options;
  options.profiles = kProfiles;
  options.batch = 100;
  options.body_pool = 1000;
  UpdateStream stream(options, {}, 1);
  UpdateStream::Batch batch;
  std::map<std::string, int> types;
  int with_attribute = 0;
  int total = 0;
  for (int b = 0; b < 200; ++b) {
    stream.Next(&batch);
    REQUIRE(batch.server == 0);
    REQUIRE(batch.keys.size() == 100);
    const v1::UpdateBatch parsed = Parse(batch);
    REQUIRE(parsed.seq() == 0);
    REQUIRE(parsed.updates_size() == 100);
    for (int i = 0; i < parsed.updates_size(); ++i) {
      const v1::ProfileUpdate& u = parsed.updates(i);
      REQUIRE(u.key() == Workload::Key(batch.keys[static_cast<size_t>(i)]));
      REQUIRE(batch.keys[static_cast<size_t>(i)] < kProfiles);
      REQUIRE(u.events_size() == 1);
      REQUIRE(u.events(0).time() == 0);  // the server's now
      ++types[u.events(0).type()];
      if (u.set_size() + u.increment_size() > 0) ++with_attribute;
      ++total;
    }
  }
  REQUIRE(stream.drawn() == 20'000);
  // The stream mix of BENCHMARK.md (the pool of 1,000 is cycled, so its mix is the mix).
  const auto share = [&](const std::string& type) {
    return 100.0 * types[type] / static_cast<double>(total);
  };
  REQUIRE(share("page_view") == Approx(70).margin(4));
  REQUIRE(share("add_to_cart") == Approx(15).margin(3));
  REQUIRE(share("purchase") == Approx(5).margin(2));
  REQUIRE(share("login") == Approx(7).margin(2));
  REQUIRE(share("email_click") == Approx(3).margin(1.5));
  REQUIRE(100.0 * with_attribute / total == Approx(10).margin(2.5));
}

TEST_CASE("UpdateStream routes every update to its key's server", "[loadgen][update_stream]") {
  UpdateStreamOptions options;
  options.profiles = kProfiles;
  options.batch = 64;
  options.body_pool = 256;
  std::vector<uint8_t> shard_of(kProfiles);
  for (uint64_t n = 0; n < kProfiles; ++n) shard_of[n] = static_cast<uint8_t>((n * 7) % 3);
  UpdateStream stream(options, shard_of, 3);
  UpdateStream::Batch batch;
  std::map<int, int> batches;
  for (int b = 0; b < 300; ++b) {
    stream.Next(&batch);
    REQUIRE(batch.keys.size() == 64);
    ++batches[batch.server];
    const v1::UpdateBatch parsed = Parse(batch);
    for (int i = 0; i < parsed.updates_size(); ++i) {
      const uint32_t key = batch.keys[static_cast<size_t>(i)];
      REQUIRE(shard_of[key] == batch.server);
      REQUIRE(parsed.updates(i).key() == Workload::Key(key));
    }
  }
  REQUIRE(batches.size() == 3);
  for (const auto& [server, n] : batches) REQUIRE(n == Approx(100).margin(15));
}

TEST_CASE("UpdateStream draws keys uniformly or by Zipf 0.99", "[loadgen][update_stream]") {
  UpdateStreamOptions options;
  options.profiles = kProfiles;
  options.batch = 1000;
  options.body_pool = 64;
  UpdateStream::Batch batch;

  UpdateStream uniform(options, {}, 1);
  double sum = 0;
  for (int b = 0; b < 100; ++b) {
    uniform.Next(&batch);
    for (uint32_t k : batch.keys) sum += k;
  }
  REQUIRE(sum / 100'000 == Approx(kProfiles / 2.0).epsilon(0.02));

  options.skew = KeySkew::kZipf;
  UpdateStream zipf(options, {}, 1);
  int first = 0;
  for (int b = 0; b < 100; ++b) {
    zipf.Next(&batch);
    for (uint32_t k : batch.keys) first += k == 0;
  }
  // P(rank 1) = 1 / H(n, 0.99).
  double h = 0;
  for (uint64_t k = 1; k <= kProfiles; ++k) h += std::pow(static_cast<double>(k), -0.99);
  REQUIRE(first / 100'000.0 == Approx(1 / h).epsilon(0.05));
}

TEST_CASE("UpdateStream is deterministic for a seed", "[loadgen][update_stream]") {
  UpdateStreamOptions options;
  options.profiles = kProfiles;
  options.batch = 32;
  options.body_pool = 128;
  UpdateStream a(options, {}, 1), b(options, {}, 1);
  UpdateStream::Batch x, y;
  for (int i = 0; i < 10; ++i) {
    a.Next(&x);
    b.Next(&y);
    REQUIRE(x.updates == y.updates);
    REQUIRE(x.keys == y.keys);
  }
  options.seed = 2;
  UpdateStream c(options, {}, 1);
  c.Next(&y);
  a.Next(&x);
  REQUIRE(x.keys != y.keys);
}

}  // namespace
}  // namespace segd::load
