#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "loadgen/workload.h"

namespace segd::load {

struct UpdateStreamOptions {
  uint64_t profiles = 1'000'000;  // keys u0 … u{profiles-1}
  uint64_t seed = 1;
  KeySkew skew = KeySkew::kUniform;
  uint32_t batch = 512;  // updates per batch
  // Distinct update bodies drawn from the workload and cycled through (see below).
  uint32_t body_pool = 1 << 16;
};

// The update stream of shared/BENCHMARK.md as ready-to-send wire bytes, in batches routed
// to the shards of a cluster.
//
// Generating and serializing every update afresh costs the client about as much CPU as the
// server spends applying it, and the two share the machine. So the stream is built from
// two independent parts: a pool of `body_pool` updates drawn from Workload::NextUpdate
// (the event, the 10 % attribute change; events at time 0, the server's now) serialized
// once without their key, and a fresh key per update drawn from the skew (uniform, or Zipf
// 0.99 with rank k being u{k-1}, as Workload draws them). An update is the next body of
// the pool with the next key: the event mix, the attribute changes and the key
// distribution are those of the workload; only the pairing of bodies to keys repeats
// after `body_pool` updates, which no segment can tell apart.
//
// Thread safety: none; one generator thread owns an UpdateStream.
class UpdateStream {
 public:
  // One UpdateBatch's `updates` fields (field 2, repeated), without `seq`, for one server.
  struct Batch {
    int server = 0;
    std::string updates;
    std::vector<uint32_t> keys;  // the key index of each update, in order
  };

  // `shard_of[n]` is the server of key u{n}; empty: one server (0).
  // REQUIRES: options.profiles >= 1, options.batch >= 1, options.body_pool >= 1; if
  // `shard_of` is not empty it has options.profiles entries, each below `servers`.
  UpdateStream(const UpdateStreamOptions& options, std::vector<uint8_t> shard_of, int servers);
  UpdateStream(const UpdateStream&) = delete;
  UpdateStream& operator=(const UpdateStream&) = delete;

  // Draws updates until one server's batch holds options.batch updates, and moves that
  // batch into `*out` (reusing its storage's capacity).
  void Next(Batch* out);

  // Updates drawn so far, including those waiting in partly filled batches.
  uint64_t drawn() const { return drawn_; }

  const UpdateStreamOptions& options() const { return options_; }

 private:
  uint64_t NextKey();

  UpdateStreamOptions options_;
  std::vector<uint8_t> shard_of_;
  std::string bodies_;                  // the pool, concatenated
  std::vector<uint32_t> body_offsets_;  // body i is [offsets[i], offsets[i + 1])
  uint32_t next_body_ = 0;
  Rng key_rng_;
  ZipfSampler key_zipf_;
  std::vector<Batch> filling_;  // per server
  uint64_t drawn_ = 0;
  std::string key_;
};

}  // namespace segd::load
