#include "server/ingest_service.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/text.h"
#include "server/convert.h"
#include "server/wire_decode.h"

// Every call converts its protos, hands them to the engine's asynchronous form and
// returns; the engine's `done` (on a shard thread) builds the reply. Nothing here waits.
namespace segd::server {
namespace {

// Batches of one Stream that may be read but not yet acked (in the engine, or with an
// Ack waiting to be written). At the cap the stream stops reading until an Ack is
// written, so a producer cannot make the server hold more than this many batches (each
// at most --max-message-bytes) or Acks per stream: a client that does not read its Acks
// is held back by flow control.
constexpr size_t kMaxBatchesInFlight = 16;

// Replay messages of one call in the engine at once. Two keep the shards busy while the
// next message is decoded; more would only hold more memory (a message may be up to
// --max-message-bytes of profiles).
constexpr size_t kMaxReplaysInFlight = 2;

// The read side of an ingest call, shared by Stream and Replay. Messages are read one at
// a time, each handed to the engine before the next read starts (so that the engine sees
// them in stream order), and reading goes on while fewer than a cap of messages are
// unfinished. The call ends when the client has half-closed, the server drains or the
// client is gone, and nothing is owed any more.
//
// Not thread-safe: its reactor guards it with its mutex.
struct ReadAhead {
  size_t in_engine = 0;      // messages handed to the engine, not yet done
  bool reading = false;      // a read is outstanding, or being started
  int starting_reads = 0;    // StartRead calls not yet returned
  bool half_closed = false;  // the client has sent its last message
  bool draining = false;     // the server is shutting down
  bool broken = false;       // cancelled, or a write failed
  bool finished = false;     // Finish was called (or is being)
  std::optional<grpc::Status> rejected;  // the client sent a message that does not parse

  bool stopping() const { return half_closed || draining || broken || rejected.has_value(); }

  // A read completed: true if its message goes to the engine (counted in in_engine;
  // `reading` stays set until Handed), false if the call is stopping.
  bool Take(bool ok) {
    if (ok && !draining && !broken) {
      ++in_engine;
      return true;
    }
    reading = false;
    if (!ok) half_closed = true;
    return false;
  }
  // The message taken is in the engine: the next read may start.
  void Handed() { reading = false; }
  // The message taken does not parse: it goes nowhere, and the call ends with `status`
  // once nothing is owed.
  void Reject(grpc::Status status) {
    --in_engine;
    reading = false;
    rejected = std::move(status);
  }

  // Whether to start a read now, with `unfinished` messages in the engine or owed a
  // reply; if so, the caller must call StartRead and then ReadStarted.
  bool WantRead(size_t unfinished, size_t cap) {
    if (stopping() || reading || unfinished >= cap) return false;
    reading = true;
    ++starting_reads;
    return true;
  }
  void ReadStarted() { --starting_reads; }

  // The status to finish with, once stopping and nothing is in the engine, `owed` or
  // being read; nullopt until then (and after it was returned once).
  std::optional<grpc::Status> FinishStatus(bool owed) {
    if (finished || !stopping() || in_engine > 0 || owed || starting_reads > 0) {
      return std::nullopt;
    }
    finished = true;
    if (broken) return grpc::Status::CANCELLED;
    if (rejected.has_value()) return *rejected;
    if (half_closed) return grpc::Status::OK;
    return ShuttingDown();
  }
};

// The memory of one message of a call while it is decoded and in the engine: its bytes,
// copied out of gRPC's slices into one piece, and the blocks of its decoded form's arena.
// A call keeps the storage of its finished messages for its next ones (StoragePool), so a
// bulk load decodes into memory it has touched before instead of malloc mapping fresh
// megabytes for every message, faulting them in, and unmapping them after.
class MessageStorage {
 public:
  // Copies the message in `buffer` here, leaving `buffer` empty; returns its bytes, valid
  // until the next CopyFrom.
  absl::StatusOr<std::string_view> CopyFrom(grpc::ByteBuffer* buffer) {
    std::vector<grpc::Slice> slices;
    const grpc::Status dumped = buffer->Dump(&slices);
    buffer->Clear();
    if (!dumped.ok()) return absl::InternalError(dumped.error_message());
    size_t size = 0;
    for (const grpc::Slice& slice : slices) size += slice.size();
    if (size > capacity_) {
      bytes_ = std::make_unique_for_overwrite<char[]>(size);
      capacity_ = size;
    }
    char* out = bytes_.get();
    for (const grpc::Slice& slice : slices) {
      std::memcpy(out, slice.begin(), slice.size());
      out += slice.size();
    }
    return std::string_view(bytes_.get(), size);
  }

  // Where the decoded form's arena gets its blocks, from the first again.
  std::pmr::memory_resource* RewoundBlocks() {
    blocks_.Rewind();
    return &blocks_;
  }

  // What it takes, bytes and blocks.
  size_t bytes() const { return capacity_ + blocks_.bytes(); }

 private:
  std::unique_ptr<char[]> bytes_;
  size_t capacity_ = 0;
  RecycledBlocks blocks_;
};

// The storage of a call's finished messages, for its next ones. It keeps at most
// `max_kept` of them, each of at most kMaxKeptBytes: a call that sent a few huge messages
// does not hold their memory until it ends. Thread-safe (messages finish on shard
// threads).
class StoragePool {
 public:
  // A 4 MiB Replay message (the client's default) takes ~14 MiB with its arena.
  static constexpr size_t kMaxKeptBytes = 32 << 20;

  explicit StoragePool(size_t max_kept) : max_kept_(max_kept) {}

  std::unique_ptr<MessageStorage> Take() {
    absl::MutexLock lock(&mu_);
    if (free_.empty()) return std::make_unique<MessageStorage>();
    std::unique_ptr<MessageStorage> storage = std::move(free_.back());
    free_.pop_back();
    return storage;
  }
  void Give(std::unique_ptr<MessageStorage> storage) {
    if (storage->bytes() > kMaxKeptBytes) return;
    absl::MutexLock lock(&mu_);
    if (free_.size() < max_kept_) free_.push_back(std::move(storage));
  }
  // Frees what is kept (the call is over).
  void Clear() {
    absl::MutexLock lock(&mu_);
    free_.clear();
  }

 private:
  const size_t max_kept_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<MessageStorage>> free_ ABSL_GUARDED_BY(mu_);
};

// A message read and decoded into views of its storage: what goes to the engine, kept
// until every shard is done with it.
template <typename Decoded>
struct BorrowedMessage {
  std::unique_ptr<MessageStorage> storage;
  Decoded decoded;  // destroyed first: its arena's blocks are in `storage`

  // Gives the storage back to `pool`, for the call's next message; the decoded form is
  // gone after it.
  void Recycle(StoragePool& pool) {
    decoded = Decoded();
    pool.Give(std::move(storage));
  }
};

// The message number `n` (counting from 1) of a call's stream, read from `buffer` (left
// empty for the next read) into storage from `pool` and decoded there by
// `decode(bytes, blocks)`. Errors name the message.
template <typename Decoded, typename Decode>
absl::StatusOr<std::unique_ptr<BorrowedMessage<Decoded>>> ReadMessage(grpc::ByteBuffer* buffer,
                                                                      uint64_t n, StoragePool& pool,
                                                                      const Decode& decode) {
  auto message = std::make_unique<BorrowedMessage<Decoded>>();
  message->storage = pool.Take();
  absl::StatusOr<std::string_view> bytes = message->storage->CopyFrom(buffer);
  absl::StatusOr<Decoded> decoded =
      bytes.ok() ? decode(*bytes, message->storage->RewoundBlocks()) : bytes.status();
  if (!decoded.ok()) {
    pool.Give(std::move(message->storage));
    return absl::Status(
        decoded.status().code(),
        absl::StrCat("message ", n, " of the stream: ", decoded.status().message()));
  }
  message->decoded = *std::move(decoded);
  return message;
}

// How often RejectLog may write a line.
constexpr absl::Duration kRejectLogInterval = absl::Seconds(1);

}  // namespace

void IngestService::RejectLog::Record(std::string_view rpc, std::span<const UpdateError> errors) {
  if (errors.empty()) return;
  uint64_t count = 0;
  {
    absl::MutexLock lock(&mu_);
    unlogged_ += errors.size();
    const absl::Time now = absl::Now();
    if (now - last_line_ < kRejectLogInterval) return;
    last_line_ = now;
    count = unlogged_;
    unlogged_ = 0;
  }
  const UpdateError& first = errors.front();
  spdlog::warn("ingest: {} updates rejected since the last report, e.g. {} index={} key=\"{}\": {}",
               count, rpc, first.index, ToValidUtf8(first.key), ToValidUtf8(first.message));
}

// ---- Stream ----

// One Ingest.Stream call.
//
// Batches go to the engine in the order they are read, each handed over before the next
// read starts, so the updates of one key apply in stream order. Reading goes on while
// earlier batches are applied, up to kMaxBatchesInFlight batches read and not yet acked;
// at the cap no read is outstanding until an Ack is written. Each batch's Ack is built
// when the engine is done with it (batches may finish out of order, on shard threads),
// queued, and written with one write in flight. The call finishes once the client has
// half-closed (OK), the server is draining (UNAVAILABLE; batches read after that are not
// applied) or the client is gone (CANCELLED) — and nothing is in the engine and every Ack
// owed is written. A call that starts while the server drains finishes at once.
//
// Lifetime: gRPC holds one reference, dropped in OnDone; each batch in the engine holds
// one, so that its `done` may run after OnDone. The last reference deletes the reactor.
//
// Thread safety: reactions run on gRPC threads, engine `done`s on shard threads. State
// is guarded by mu_; decisions are taken under it (NextStep) and the gRPC operations
// they call for are started outside it (Run). Finish is called once no batch is in the
// engine, no Ack is queued or being written and no StartRead is being issued, so no
// operation is ever started after it.
class IngestService::StreamReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
      public IngestService::DrainableCall {
 public:
  StreamReactor(IngestService& service, ServiceEnv& env, RejectLog& rejects)
      : service_(service), env_(env), rejects_(rejects) {
    service_.Register(this);
    Step step;
    {
      absl::MutexLock lock(&mu_);
      step = NextStep();  // the first read, or (draining) Finish
    }
    Run(std::move(step));
  }

  void OnReadDone(bool ok) override {
    bool apply = false;
    Step step;
    {
      absl::MutexLock lock(&mu_);
      if (env_.draining) read_.draining = true;
      // Not applied when draining (its producer sees no Ack for it and the stream end
      // with UNAVAILABLE) or broken (no Ack could be written).
      apply = read_.Take(ok);
      if (!apply) step = NextStep();
    }
    if (!apply) {
      Run(std::move(step));
      return;
    }
    // request_ and messages_ belong to the one outstanding read.
    absl::StatusOr<std::unique_ptr<Message>> message =
        ReadMessage<DecodedUpdateBatch>(&request_, ++messages_, storage_, DecodeUpdateBatch);
    if (!message.ok()) {
      {
        absl::MutexLock lock(&mu_);
        read_.Reject(ToGrpcStatus(message.status()));
        step = NextStep();
      }
      Run(std::move(step));
      return;
    }
    const std::span<const UpdateRef> updates = (*message)->decoded.updates.items;
    Ref();
    // The message goes with the callback, until every shard is done with it.
    env_.engine.ApplyAsync(updates,
                           [this, message = *std::move(message)](BatchResult result) mutable {
                             OnApplied(std::move(message), std::move(result));
                           });
    // Only now may the next read start: the next batch must reach every shard after
    // this one.
    {
      absl::MutexLock lock(&mu_);
      read_.Handed();
      step = NextStep();
    }
    Run(std::move(step));
  }

  void OnWriteDone(bool ok) override {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) Break();
      step = NextStep();
    }
    Run(std::move(step));
  }

  void OnCancel() override {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      Break();
      step = NextStep();
    }
    Run(std::move(step));
  }

  void OnDone() override {
    service_.Unregister(this);
    Unref();
  }

  // The server drains: finish now if nothing is owed, else after the last Ack.
  void Drain() override {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      read_.draining = true;
      step = NextStep();
    }
    Run(std::move(step));
  }

 private:
  // The gRPC operations one decision calls for, in the order Run starts them.
  struct Step {
    bool write = false;  // write write_
    bool read = false;   // read into request_
    std::optional<grpc::Status> finish;
  };

  // A batch read, and its updates, which borrow its storage.
  using Message = BorrowedMessage<DecodedUpdateBatch>;

  // Runs on a shard thread, holding a reference.
  void OnApplied(std::unique_ptr<Message> message, BatchResult result) {
    result.errors = message->decoded.updates.Merge(std::move(result.errors));
    rejects_.Record("Stream", result.errors);
    v1::Ack ack;
    ToProto(message->decoded.seq, result, &ack);
    message->Recycle(storage_);
    Step step;
    {
      absl::MutexLock lock(&mu_);
      --read_.in_engine;
      if (!read_.broken) acks_.push_back(std::move(ack));
      step = NextStep();
    }
    Run(std::move(step));
    Unref();
  }

  // The client is gone: nothing more can be written.
  void Break() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    read_.broken = true;
    acks_.clear();
  }

  Step NextStep() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Step step;
    if (read_.finished) return step;
    if (env_.draining) read_.draining = true;
    if (!writing_ && !acks_.empty()) {
      write_ = std::move(acks_.front());
      acks_.pop_front();
      writing_ = true;
      step.write = true;
    }
    const size_t unacked = read_.in_engine + acks_.size() + (writing_ ? 1 : 0);
    step.read = read_.WantRead(unacked, kMaxBatchesInFlight);
    step.finish = read_.FinishStatus(/*owed=*/writing_ || !acks_.empty());
    return step;
  }

  // Starts what `step` calls for. REQUIRES: the caller keeps the reactor alive (it is in
  // a reaction, or holds a reference).
  void Run(Step step) {
    while (true) {
      if (step.write) {
        write_bytes_ = Serialize(write_);
        StartWrite(&write_bytes_);
      }
      if (step.finish.has_value()) {
        Finish(*std::move(step.finish));
        return;
      }
      if (!step.read) return;
      StartRead(&request_);
      absl::MutexLock lock(&mu_);
      read_.ReadStarted();
      step = NextStep();
    }
  }

  IngestService& service_;
  ServiceEnv& env_;
  RejectLog& rejects_;

  // Filled by the outstanding read; read between its OnReadDone and the next StartRead.
  grpc::ByteBuffer request_;
  uint64_t messages_ = 0;  // read so far, request_ included
  // Of the batches that were in the engine: as many as are in it at a steady rate.
  StoragePool storage_{4};
  // Written by the write in flight; set only while no write is in flight.
  v1::Ack write_;
  grpc::ByteBuffer write_bytes_;

  absl::Mutex mu_;
  ReadAhead read_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;      // a write is in flight, or being started
  std::deque<v1::Ack> acks_ ABSL_GUARDED_BY(mu_);  // Acks waiting for the write in flight
};

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* IngestService::Stream(
    grpc::CallbackServerContext* /*ctx*/) {
  return new StreamReactor(*this, env_, rejects_);
}

void IngestService::Register(DrainableCall* call) {
  absl::MutexLock lock(&calls_mu_);
  calls_.insert(call);
}

void IngestService::Unregister(DrainableCall* call) {
  absl::MutexLock lock(&calls_mu_);
  calls_.erase(call);
}

void IngestService::FinishAll() {
  // References keep each call alive while it is drained outside the registry's lock
  // (draining may finish a call, and its OnDone takes that lock).
  std::vector<DrainableCall*> open;
  {
    absl::MutexLock lock(&calls_mu_);
    for (DrainableCall* c : calls_) {
      c->Ref();
      open.push_back(c);
    }
  }
  for (DrainableCall* c : open) {
    c->Drain();
    c->Unref();
  }
}

// ---- Apply ----

grpc::ServerUnaryReactor* IngestService::Apply(grpc::CallbackServerContext* ctx,
                                               const v1::UpdateBatch* request, v1::Ack* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (Refused(reactor, env_)) return reactor;
  ConvertedBatch<ProfileUpdate> batch = UpdatesFromProto(request->updates());
  std::vector<ProfileUpdate> updates = std::move(batch.items);
  env_.engine.ApplyAsync(std::move(updates),
                         [this, reactor, response, seq = request->seq(),
                          batch = std::move(batch)](BatchResult result) mutable {
                           result.errors = batch.Merge(std::move(result.errors));
                           rejects_.Record("Apply", result.errors);
                           ToProto(seq, result, response);
                           reactor->Finish(grpc::Status::OK);
                         });
  return reactor;
}

// ---- Replay ----

// One Ingest.Replay call.
//
// Messages go to the engine in the order they are read, each handed over before the
// next read starts (so a key replayed twice ends as its later profile), with up to
// kMaxReplaysInFlight messages in the engine while the next one is read: the shards
// apply one message while gRPC decodes the next. The call finishes once the client has
// half-closed and every message is replayed (OK, with the summary of the whole stream),
// when the server drains (UNAVAILABLE; messages read after that are not replayed), or
// when the client is gone (CANCELLED).
//
// Lifetime and thread safety as StreamReactor: gRPC holds one reference, each message in
// the engine one; state is guarded by mu_, decisions are taken under it (NextStep) and
// the operations they call for are started outside it (Run).
class IngestService::ReplayReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer>,
                                           public IngestService::DrainableCall {
 public:
  ReplayReactor(IngestService& service, ServiceEnv& env, RejectLog& rejects,
                grpc::ByteBuffer* response)
      : service_(service), env_(env), rejects_(rejects), response_(response) {
    service_.Register(this);
    Step step;
    {
      absl::MutexLock lock(&mu_);
      step = NextStep();  // the first read, or (draining) Finish
    }
    Run(std::move(step));
  }

  void OnReadDone(bool ok) override {
    bool replay = false;
    Step step;
    {
      absl::MutexLock lock(&mu_);
      if (env_.draining) read_.draining = true;
      replay = read_.Take(ok);
      if (!replay) step = NextStep();
    }
    if (!replay) {
      Run(std::move(step));
      return;
    }
    // request_, messages_, quiet_ and next_index_ belong to the one outstanding read.
    absl::StatusOr<std::unique_ptr<Message>> message = ReadMessage<DecodedReplayRequest>(
        &request_, ++messages_, storage_,
        [&](std::string_view bytes, std::pmr::memory_resource* blocks) {
          return DecodeReplayRequest(bytes, next_index_, blocks);
        });
    if (!message.ok()) {
      {
        absl::MutexLock lock(&mu_);
        read_.Reject(ToGrpcStatus(message.status()));
        step = NextStep();
      }
      Run(std::move(step));
      return;
    }
    const DecodedReplayRequest& decoded = (*message)->decoded;
    if (messages_ == 1) quiet_ = decoded.quiet;
    next_index_ += decoded.profiles;
    const std::span<const ProfileRef> profiles = decoded.converted.items;
    Ref();
    // The message goes with the callback, until every shard is done with it.
    env_.engine.ReplayAsync(profiles, quiet_,
                            [this, message = *std::move(message)](ReplayResult result) mutable {
                              OnReplayed(std::move(message), std::move(result));
                            });
    {
      absl::MutexLock lock(&mu_);
      read_.Handed();
      step = NextStep();
    }
    Run(std::move(step));
  }

  void OnCancel() override {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      read_.broken = true;
      step = NextStep();
    }
    Run(std::move(step));
  }

  void OnDone() override {
    service_.Unregister(this);
    // A replay decodes each message on a gRPC thread and frees it on a shard thread,
    // while the shards allocate the profiles' blobs, leaving glibc's per-thread arenas
    // with free memory that RSS still counts. Give it back once the bulk load is over:
    // one call per Replay, a few milliseconds.
    storage_.Clear();
    malloc_trim(0);
    Unref();
  }

  void Drain() override {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      read_.draining = true;
      step = NextStep();
    }
    Run(std::move(step));
  }

 private:
  struct Step {
    bool read = false;
    std::optional<grpc::Status> finish;
  };

  // A message read, and its profiles, which borrow its storage.
  using Message = BorrowedMessage<DecodedReplayRequest>;

  // On a shard thread, holding a reference.
  void OnReplayed(std::unique_ptr<Message> message, ReplayResult result) {
    std::vector<UpdateError> errors = message->decoded.converted.Merge(std::move(result.errors));
    // Before the call may finish (OnDone frees the pool).
    message->Recycle(storage_);
    rejects_.Record("Replay", errors);
    Step step;
    {
      absl::MutexLock lock(&mu_);
      --read_.in_engine;
      summary_.profiles += result.profiles;
      summary_.events += result.events;
      for (UpdateError& e : errors) summary_.errors.push_back(std::move(e));
      step = NextStep();
    }
    Run(std::move(step));
    Unref();
  }

  Step NextStep() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Step step;
    if (read_.finished) return step;
    if (env_.draining) read_.draining = true;
    step.read = read_.WantRead(read_.in_engine, kMaxReplaysInFlight);
    step.finish = read_.FinishStatus(/*owed=*/false);
    if (step.finish.has_value() && step.finish->ok()) {
      // Messages finish out of order across shards; errors are reported by index.
      std::sort(summary_.errors.begin(), summary_.errors.end(),
                [](const UpdateError& a, const UpdateError& b) { return a.index < b.index; });
      v1::ReplaySummary summary;
      ToProto(summary_, &summary);
      *response_ = Serialize(summary);
    }
    return step;
  }

  void Run(Step step) {
    while (true) {
      if (step.finish.has_value()) {
        Finish(*std::move(step.finish));
        return;
      }
      if (!step.read) return;
      StartRead(&request_);
      absl::MutexLock lock(&mu_);
      read_.ReadStarted();
      step = NextStep();
    }
  }

  IngestService& service_;
  ServiceEnv& env_;
  RejectLog& rejects_;
  grpc::ByteBuffer* const response_;

  grpc::ByteBuffer request_;
  uint64_t messages_ = 0;  // read so far, request_ included
  bool quiet_ = false;
  uint32_t next_index_ = 0;  // profiles in the messages before request_
  StoragePool storage_{kMaxReplaysInFlight + 1};  // of the messages that were in the engine

  absl::Mutex mu_;
  ReadAhead read_ ABSL_GUARDED_BY(mu_);
  ReplayResult summary_ ABSL_GUARDED_BY(mu_);
};

grpc::ServerReadReactor<grpc::ByteBuffer>* IngestService::Replay(
    grpc::CallbackServerContext* /*ctx*/, grpc::ByteBuffer* response) {
  return new ReplayReactor(*this, env_, rejects_, response);
}

}  // namespace segd::server
