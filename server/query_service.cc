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
// the call. The two streaming handlers share a reactor class below that owns the call's
// state, keeps at most one write in flight and deletes itself in OnDone().
namespace segd::server {
namespace {

grpc::Status WriteFailed() {
  return grpc::Status(grpc::StatusCode::CANCELLED, "the stream was closed");
}

// Member keys (ListMembers)...
constexpr size_t kMembersPerChunk = 1000;
// ...or profiles (Export) read from a shard at a time...
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

// ListMembers and Export: walk the shards in order, each in pieces (ShardChunks) from slot
// 0 until kExportDone. Only one piece is held at a time: it is converted and written as
// one or more batches, one write in flight, and the next piece is read only once the
// last batch of this one has been written. So memory stays bounded by a piece however
// many profiles the shards hold, and a slow reader slows only its own call.
//
// Between reading a piece and writing its last batch nothing of the engine is held: a
// profile changed meanwhile is streamed as it is when its piece is read, and one created
// during the call may or may not appear.
//
// `Source` says what is streamed: `Item` (held in a piece), `Batch` (the response
// message), `void Read(Engine&, int shard, uint32_t from, Done<absl::StatusOr<
// ShardChunk<Item>>>) const` and `static size_t Add(Item&&, Batch*)` (returns the bytes
// the item adds to the batch).
template <typename Source>
class ShardChunkWriter final : public grpc::ServerWriteReactor<typename Source::Batch> {
 public:
  using Item = typename Source::Item;
  using Batch = typename Source::Batch;

  ShardChunkWriter(ServiceEnv& env, size_t batch_bytes, Source source)
      : env_(env), batch_bytes_(batch_bytes), source_(std::move(source)) {}

  void Start() {
    if (env_.draining) return this->Finish(ShuttingDown());
    ReadChunk();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return this->Finish(WriteFailed());
    WriteNext();
  }

  void OnCancel() override { cancelled_.store(true, std::memory_order_relaxed); }

  void OnDone() override { delete this; }

 private:
  // REQUIRES: no write and no read in flight.
  void ReadChunk() {
    if (shard_ == env_.engine.num_shards()) return this->Finish(grpc::Status::OK);
    source_.Read(env_.engine, shard_, from_,
                 [this](absl::StatusOr<ShardChunk<Item>> chunk) { OnChunk(std::move(chunk)); });
  }

  // On a shard thread (or at once, on an error).
  void OnChunk(absl::StatusOr<ShardChunk<Item>> chunk) {
    if (!chunk.ok()) return this->Finish(ToGrpcStatus(chunk.status()));
    if (cancelled_.load(std::memory_order_relaxed)) return this->Finish(WriteFailed());
    if (env_.draining) return this->Finish(ShuttingDown());
    if (chunk->next == kExportDone) {
      ++shard_;
      from_ = 0;
    } else {
      from_ = chunk->next;
    }
    items_ = std::move(chunk->items);
    next_ = 0;
    WriteNext();
  }

  // REQUIRES: no write and no read in flight.
  void WriteNext() {
    if (next_ == items_.size()) {
      items_.clear();
      return ReadChunk();
    }
    if (env_.draining) return this->Finish(ShuttingDown());
    batch_.Clear();
    size_t bytes = 0;
    while (next_ < items_.size() && bytes < batch_bytes_) {
      bytes += Source::Add(std::move(items_[next_]), &batch_);
      ++next_;
    }
    this->StartWrite(&batch_);
  }

  ServiceEnv& env_;
  const size_t batch_bytes_;
  const Source source_;
  std::atomic<bool> cancelled_{false};
  int shard_ = 0;            // the shard being read
  uint32_t from_ = 0;        // the slot of shard_ to read from next
  std::vector<Item> items_;  // the piece being written
  size_t next_ = 0;          // the first item of items_ not yet written
  Batch batch_;
};

// ListMembers: the keys of a segment's members.
struct MemberSource {
  using Item = std::string;
  using Batch = v1::MemberBatch;
  std::string segment;

  void Read(Engine& engine, int shard, uint32_t from,
            Engine::Done<absl::StatusOr<ShardChunk<std::string>>> done) const {
    engine.MembersChunkAsync(segment, shard, from, kMembersPerChunk, std::move(done));
  }
  static size_t Add(std::string&& key, v1::MemberBatch* batch) {
    const size_t bytes = key.size() + 3;  // tag and length of the repeated field entry
    batch->add_keys(std::move(key));
    return bytes;
  }
};

// Export: whole profiles.
struct ProfileSource {
  using Item = ProfileData;
  using Batch = v1::ExportBatch;

  void Read(Engine& engine, int shard, uint32_t from,
            Engine::Done<absl::StatusOr<ShardChunk<ProfileData>>> done) const {
    engine.ExportChunkAsync(shard, from, kProfilesPerChunk,
                            [done = std::move(done)](ShardChunk<ProfileData> chunk) mutable {
                              std::move(done)(std::move(chunk));
                            });
  }
  static size_t Add(ProfileData&& profile, v1::ExportBatch* batch) {
    v1::Profile* p = batch->add_profiles();
    ToProto(profile, p);
    profile = ProfileData();  // converted: its memory is the batch's now
    return p->ByteSizeLong();
  }
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
  auto* writer =
      new ShardChunkWriter<MemberSource>(env_, BatchBytes(env_), MemberSource{request->segment()});
  if (absl::Status s = ValidateSegmentId(request->segment()); !s.ok()) {
    writer->Finish(ToGrpcStatus(s));
  } else {
    writer->Start();
  }
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
  auto* writer = new ShardChunkWriter<ProfileSource>(env_, BatchBytes(env_), ProfileSource{});
  writer->Start();
  return writer;
}

}  // namespace segd::server
