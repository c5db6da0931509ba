#include "loadgen/update_stream.h"

#include <cassert>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "loadgen/wire_format.h"
#include "segd/v1/segd.pb.h"
#include "server/convert.h"

namespace segd::load {
namespace {

// Keys are drawn from their own generator, apart from the bodies' (seeded by `seed`), so
// that changing the pool size does not change the key sequence.
constexpr uint64_t kKeySeedSalt = 0x6b657973'5eed5eedULL;

}  // namespace

UpdateStream::UpdateStream(const UpdateStreamOptions& options, std::vector<uint8_t> shard_of,
                           int servers)
    : options_(options),
      shard_of_(std::move(shard_of)),
      key_rng_(options.seed ^ kKeySeedSalt),
      key_zipf_(options.profiles, 0.99),
      filling_(static_cast<size_t>(servers)) {
  assert(options.profiles >= 1 && options.batch >= 1 && options.body_pool >= 1);
  assert(shard_of_.empty() || shard_of_.size() == options.profiles);
  WorkloadOptions workload_options;
  workload_options.profiles = options.profiles;
  workload_options.seed = options.seed;
  Workload workload(workload_options);
  ProfileUpdate update;
  v1::ProfileUpdate proto;
  std::string body;
  body_offsets_.reserve(options.body_pool + 1);
  body_offsets_.push_back(0);
  for (uint32_t i = 0; i < options.body_pool; ++i) {
    workload.NextUpdate(/*now_ms=*/0, &update);  // event time 0: the server's now
    update.key.clear();
    proto.Clear();
    server::ToProto(update, &proto);
    body.clear();
    {
      // Deterministic: map entries in key order, so a seed gives the same bytes every run.
      google::protobuf::io::StringOutputStream string_stream(&body);
      google::protobuf::io::CodedOutputStream coded(&string_stream);
      coded.SetSerializationDeterministic(true);
      proto.SerializeToCodedStream(&coded);
    }
    bodies_ += body;
    body_offsets_.push_back(static_cast<uint32_t>(bodies_.size()));
  }
  for (size_t s = 0; s < filling_.size(); ++s) filling_[s].server = static_cast<int>(s);
}

uint64_t UpdateStream::NextKey() {
  if (options_.skew == KeySkew::kZipf) return key_zipf_.Sample(key_rng_) - 1;
  return key_rng_.Below(options_.profiles);
}

void UpdateStream::Next(Batch* out) {
  while (true) {
    const uint64_t key = NextKey();
    const int server = shard_of_.empty() ? 0 : shard_of_[key];
    Batch& batch = filling_[static_cast<size_t>(server)];
    key_.clear();
    Workload::AppendKey(key, &key_);
    const std::string_view body(bodies_.data() + body_offsets_[next_body_],
                                body_offsets_[next_body_ + 1] - body_offsets_[next_body_]);
    if (++next_body_ == options_.body_pool) next_body_ = 0;
    wire::AppendKeyedUpdate(key_, body, &batch.updates);
    batch.keys.push_back(static_cast<uint32_t>(key));
    ++drawn_;
    if (batch.keys.size() == options_.batch) {
      // Hand the full batch out and keep `out`'s old buffers for the next one.
      std::swap(*out, batch);
      batch.server = server;
      batch.updates.clear();
      batch.keys.clear();
      return;
    }
  }
}

}  // namespace segd::load
