#include "client/replayer.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/shard_errors.h"

namespace segd::client {
namespace {

// Room left in a message for its framing and the quiet flag.
constexpr size_t kMessageOverhead = 64 << 10;

// The bytes a profile adds to a ReplayRequest: its encoding, tag and length.
size_t EncodedSize(const v1::Profile& profile) { return profile.ByteSizeLong() + 8; }

// The most a message may hold, given the largest the channel sends.
size_t MessageLimit(int max_message_bytes) {
  const size_t max = static_cast<size_t>(max_message_bytes);
  return max > 2 * kMessageOverhead ? max - kMessageOverhead : std::max<size_t>(1, max / 2);
}

}  // namespace

Replayer::Replayer(std::shared_ptr<const Cluster> cluster, ReplayOptions options)
    : cluster_(std::move(cluster)),
      options_(std::move(options)),
      message_limit_(MessageLimit(cluster_->options.max_message_bytes)),
      message_bytes_(std::max<size_t>(1, std::min(options_.message_bytes, message_limit_))),
      max_ready_(2 * static_cast<size_t>(options_.streams_per_shard)),
      filling_(cluster_->shards.size()),
      ready_(cluster_->shards.size()) {}

void Replayer::Start() {
  for (size_t s = 0; s < cluster_->shards.size(); ++s) {
    if (options_.only_shard.has_value() && *options_.only_shard != static_cast<int>(s)) continue;
    for (int c = 0; c < options_.streams_per_shard; ++c) {
      calls_.emplace_back([this, s] { RunCall(static_cast<int>(s)); });
    }
  }
}

Replayer::~Replayer() { Finish().IgnoreError(); }

absl::Status Replayer::Add(v1::Profile profile) {
  {
    absl::MutexLock lock(&mu_);
    if (!failure_.ok()) return failure_;
  }
  const uint64_t index = added_++;
  const int s = cluster_->ring.ShardOf(profile.key());
  if (options_.only_shard.has_value() && s != *options_.only_shard) {
    absl::MutexLock lock(&mu_);
    ++result_.skipped;
    return absl::OkStatus();
  }
  const size_t size = EncodedSize(profile);
  if (size > message_limit_) {
    // It would fail its whole call; refuse it alone, as a shard would refuse a bad one.
    absl::MutexLock lock(&mu_);
    result_.errors.push_back(ReplayError{
        index, profile.key(),
        absl::StrCat("the profile takes ", size, " bytes encoded, more than a message may carry (",
                     cluster_->options.max_message_bytes, " bytes)")});
    return absl::OkStatus();
  }
  Message& message = filling_[s];
  if (!message.indexes.empty() && message.bytes + size > message_bytes_) {
    if (absl::Status shipped = Ship(s); !shipped.ok()) return shipped;
  }
  *message.request.add_profiles() = std::move(profile);
  message.indexes.push_back(index);
  message.bytes += size;
  if (message.bytes >= message_bytes_) return Ship(s);
  return absl::OkStatus();
}

bool Replayer::Accepts(std::string_view key) const {
  return !options_.only_shard.has_value() || cluster_->ring.ShardOf(key) == *options_.only_shard;
}

absl::Status Replayer::Ship(int s) {
  Message message = std::move(filling_[s]);
  filling_[s] = Message{};
  absl::MutexLock lock(&mu_);
  auto room = [this, s]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !failure_.ok() || ready_[s].size() < max_ready_;
  };
  mu_.Await(absl::Condition(&room));
  if (!failure_.ok()) return failure_;
  ready_[s].push_back(std::move(message));
  return absl::OkStatus();
}

bool Replayer::Pop(int s, Message* message) {
  absl::MutexLock lock(&mu_);
  auto ready = [this, s]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !failure_.ok() || finishing_ || !ready_[s].empty();
  };
  mu_.Await(absl::Condition(&ready));
  if (!failure_.ok() || ready_[s].empty()) return false;
  *message = std::move(ready_[s].front());
  ready_[s].pop_front();
  return true;
}

void Replayer::Fail(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (failure_.ok()) failure_ = std::move(status);
}

// The call is opened with its first message, so that a shard with nothing to replay
// gets no call. It has a channel — a TCP connection — of its own: the calls of one shard
// then do not share one connection and its server-side reader.
void Replayer::RunCall(int s) {
  const ShardStubs& shard = cluster_->shards[s];
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Ingest::Stub> stub;
  grpc::ClientContext context;
  v1::ReplaySummary summary;
  std::unique_ptr<grpc::ClientWriter<v1::ReplayRequest>> writer;
  std::vector<uint64_t> indexes;  // indexes[i]: the Add index of the call's profile i
  bool written = true;
  Message message;
  while (Pop(s, &message)) {
    if (writer == nullptr) {
      grpc::ChannelArguments args;
      args.SetMaxSendMessageSize(cluster_->options.max_message_bytes);
      args.SetMaxReceiveMessageSize(cluster_->options.max_message_bytes);
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      channel = grpc::CreateCustomChannel(shard.address, grpc::InsecureChannelCredentials(), args);
      stub = v1::Ingest::NewStub(channel);
      if (cluster_->options.stream_timeout != absl::InfiniteDuration()) {
        context.set_deadline(absl::ToChronoTime(absl::Now() + cluster_->options.stream_timeout));
      }
      writer = stub->Replay(&context, &summary);
    }
    message.request.set_quiet(options_.quiet);
    indexes.insert(indexes.end(), message.indexes.begin(), message.indexes.end());
    if (!writer->Write(message.request)) {
      written = false;  // the call has ended; Finish says how
      break;
    }
    sent_.fetch_add(message.indexes.size(), std::memory_order_relaxed);
  }
  if (writer == nullptr) return;
  if (written) writer->WritesDone();
  absl::Status status = FromGrpc(writer->Finish());
  if (status.ok() && !written) {
    status = absl::InternalError("the call ended before every message was written");
  }
  if (!status.ok()) {
    Fail(AtShard("Ingest.Replay", shard.address, status));
    return;
  }
  absl::MutexLock lock(&mu_);
  result_.profiles += summary.profiles();
  result_.events += summary.events();
  for (const v1::UpdateError& e : summary.errors()) {
    if (e.index() >= indexes.size()) {
      if (failure_.ok()) {
        failure_ =
            AtShard("Ingest.Replay", shard.address,
                    absl::InternalError(absl::StrCat("the summary reports profile ", e.index(),
                                                     " of a call that sent ", indexes.size())));
      }
      return;
    }
    result_.errors.push_back(ReplayError{indexes[e.index()], e.key(), e.message()});
  }
}

absl::StatusOr<ReplayResult> Replayer::Finish() {
  if (finished_) return final_;
  finished_ = true;
  for (size_t s = 0; s < filling_.size(); ++s) {
    if (!filling_[s].indexes.empty()) Ship(static_cast<int>(s)).IgnoreError();
  }
  {
    absl::MutexLock lock(&mu_);
    finishing_ = true;
  }
  for (std::thread& call : calls_) call.join();
  calls_.clear();
  absl::MutexLock lock(&mu_);
  if (!failure_.ok()) {
    final_ = failure_;
  } else {
    std::sort(result_.errors.begin(), result_.errors.end(),
              [](const ReplayError& a, const ReplayError& b) { return a.index < b.index; });
    final_ = result_;
  }
  return final_;
}

}  // namespace segd::client
