#include "server/query_service.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/segment_catalog.h"
#include "core/shard.h"
#include "server/convert.h"

// Unary handlers run on the default reactor: they start one asynchronous engine
// operation and return; its `done` (on a shard thread) fills the response and finishes
// the call. The two streaming handlers each have a reactor class below that owns the
// call's state, keeps at most one write in flight and deletes itself in OnDone().
namespace segd::server {
namespace {

grpc::Status WriteFailed() {
  return grpc::Status(grpc::StatusCode::CANCELLED, "the stream was closed");
}

// A streamed batch holds at most this many keys (ListMembers)...
constexpr size_t kMembersPerBatch = 1000;
// ...or profiles read from a shard at a time (Export)...
constexpr size_t kProfilesPerChunk = 256;
// ...and a batch is closed once it reaches this size (or a quarter of the largest
// message, if that is smaller), so that it stays well under the message limit.
constexpr size_t kBatchBytes = 4 << 20;

size_t BatchBytes(const ServiceEnv& env) {
  return std::max<size_t>(1, std::min<size_t>(kBatchBytes, env.max_message_bytes / 4));
}

// Finishes `reactor` with the engine's status, or fills `response` and finishes OK.
template <typename T, typename Response>
auto Reply(grpc::ServerUnaryReactor* reactor, Response* response) {
  return [reactor, response](absl::StatusOr<T> result) {
    if (!result.ok()) {
      reactor->Finish(ToGrpcStatus(result.status()));
      return;
    }
    ToProto(*result, response);
    reactor->Finish(grpc::Status::OK);
  };
}

// ListMembers: the engine gathers every member key of the segment (from all shards);
// they are then written in batches of at most kMembersPerBatch keys, one at a time.
class MembersWriter final : public grpc::ServerWriteReactor<v1::MemberBatch> {
 public:
  MembersWriter(ServiceEnv& env, size_t batch_bytes) : env_(env), batch_bytes_(batch_bytes) {}

  void Start(std::string segment) {
    if (env_.draining) return Finish(ShuttingDown());
    if (absl::Status s = ValidateSegmentId(segment); !s.ok()) return Finish(ToGrpcStatus(s));
    env_.engine.MembersAsync(std::move(segment),
                             [this](absl::StatusOr<std::vector<std::string>> keys) {
                               if (!keys.ok()) return Finish(ToGrpcStatus(keys.status()));
                               keys_ = *std::move(keys);
                               WriteNext();
                             });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(WriteFailed());
    WriteNext();
  }

  void OnDone() override { delete this; }

 private:
  // REQUIRES: no write in flight.
  void WriteNext() {
    if (next_ == keys_.size()) return Finish(grpc::Status::OK);
    if (env_.draining) return Finish(ShuttingDown());
    batch_.Clear();
    size_t bytes = 0;
    while (next_ < keys_.size() && batch_.keys_size() < static_cast<int>(kMembersPerBatch) &&
           bytes < batch_bytes_) {
      bytes += keys_[next_].size() + 3;  // tag and length of the repeated field entry
      batch_.add_keys(std::move(keys_[next_]));
      ++next_;
    }
    StartWrite(&batch_);
  }

  ServiceEnv& env_;
  const size_t batch_bytes_;
  std::vector<std::string> keys_;
  size_t next_ = 0;  // the first key of keys_ not yet written
  v1::MemberBatch batch_;
};

// Export: walks the shards in order, each with ExportChunkAsync from slot 0 until
// kExportDone. Only one chunk (at most kProfilesPerChunk profiles) is held at a time:
// it is converted and written as one or more batches, one write in flight, and the next
// chunk is read only once the last batch of this one has been written. So memory stays
// bounded by a chunk however many profiles the shards hold, and a slow reader slows only
// its own export.
//
// Between reading a chunk and writing its last batch nothing of the engine is held: a
// profile updated meanwhile is exported as it is when its chunk is read, and one created
// during the export may or may not appear.
class ExportWriter final : public grpc::ServerWriteReactor<v1::ExportBatch> {
 public:
  ExportWriter(ServiceEnv& env, size_t batch_bytes) : env_(env), batch_bytes_(batch_bytes) {}

  void Start() {
    if (env_.draining) return Finish(ShuttingDown());
    ReadChunk();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(WriteFailed());
    WriteNext();
  }

  void OnCancel() override { cancelled_.store(true, std::memory_order_relaxed); }

  void OnDone() override { delete this; }

 private:
  // REQUIRES: no write and no read in flight.
  void ReadChunk() {
    if (shard_ == env_.engine.num_shards()) return Finish(grpc::Status::OK);
    env_.engine.ExportChunkAsync(shard_, from_, kProfilesPerChunk,
                                 [this](ExportChunk chunk) { OnChunk(std::move(chunk)); });
  }

  // On a shard thread.
  void OnChunk(ExportChunk chunk) {
    if (cancelled_.load(std::memory_order_relaxed)) return Finish(WriteFailed());
    if (env_.draining) return Finish(ShuttingDown());
    if (chunk.next == kExportDone) {
      ++shard_;
      from_ = 0;
    } else {
      from_ = chunk.next;
    }
    chunk_ = std::move(chunk.profiles);
    next_ = 0;
    WriteNext();
  }

  // REQUIRES: no write and no read in flight.
  void WriteNext() {
    if (next_ == chunk_.size()) {
      chunk_.clear();
      return ReadChunk();
    }
    if (env_.draining) return Finish(ShuttingDown());
    batch_.Clear();
    size_t bytes = 0;
    while (next_ < chunk_.size() && bytes < batch_bytes_) {
      v1::Profile* p = batch_.add_profiles();
      ToProto(chunk_[next_], p);
      chunk_[next_] = ProfileData();  // converted: its memory is the batch's now
      bytes += p->ByteSizeLong();
      ++next_;
    }
    StartWrite(&batch_);
  }

  ServiceEnv& env_;
  const size_t batch_bytes_;
  std::atomic<bool> cancelled_{false};
  int shard_ = 0;                   // the shard being read
  uint32_t from_ = 0;               // the slot of shard_ to read from next
  std::vector<ProfileData> chunk_;  // the chunk being written
  size_t next_ = 0;                 // the first profile of chunk_ not yet written
  v1::ExportBatch batch_;
};

}  // namespace

grpc::ServerUnaryReactor* QueryService::GetProfile(grpc::CallbackServerContext* ctx,
                                                   const v1::GetProfileRequest* request,
                                                   v1::Profile* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (Refused(reactor, env_)) return reactor;
  env_.engine.GetProfileAsync(request->key(), Reply<ProfileData>(reactor, response));
  return reactor;
}

grpc::ServerWriteReactor<v1::MemberBatch>* QueryService::ListMembers(
    grpc::CallbackServerContext* ctx, const v1::ListMembersRequest* request) {
  auto* writer = new MembersWriter(env_, BatchBytes(env_));
  writer->Start(request->segment());
  return writer;
}

grpc::ServerUnaryReactor* QueryService::Count(grpc::CallbackServerContext* ctx,
                                              const v1::CountRequest* request,
                                              v1::CountResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (Refused(reactor, env_)) return reactor;
  env_.engine.CountAsync(request->rule(), Reply<CountResult>(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* QueryService::Funnel(grpc::CallbackServerContext* ctx,
                                               const v1::FunnelRequest* request,
                                               v1::FunnelResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (Refused(reactor, env_)) return reactor;
  std::vector<std::string> steps(request->steps().begin(), request->steps().end());
  env_.engine.FunnelAsync(std::move(steps), request->within_ms(),
                          Reply<FunnelResult>(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* QueryService::Explain(grpc::CallbackServerContext* ctx,
                                                const v1::ExplainRequest* request,
                                                v1::ExplainResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const absl::Status segment_ok =
      request->segment().empty() ? absl::OkStatus() : ValidateSegmentId(request->segment());
  if (Refused(reactor, env_, segment_ok)) return reactor;
  env_.engine.ExplainAsync(request->key(), request->segment(), request->rule(),
                           Reply<ExplainResult>(reactor, response));
  return reactor;
}

grpc::ServerWriteReactor<v1::ExportBatch>* QueryService::Export(grpc::CallbackServerContext* ctx,
                                                                const v1::ExportRequest* request) {
  auto* writer = new ExportWriter(env_, BatchBytes(env_));
  writer->Start();
  return writer;
}

}  // namespace segd::server
