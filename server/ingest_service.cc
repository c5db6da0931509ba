#include "server/ingest_service.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <deque>
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

// The message number `n` (counting from 1) of a call's stream, decoded from its bytes
// with `decode`; errors name the message. Empties `buffer` for the next read. The bytes
// are left in `*slice`, for a decoded form that borrows them.
template <typename Decode>
auto DecodeMessage(grpc::ByteBuffer* buffer, uint64_t n, grpc::Slice* slice,
                   const Decode& decode) -> decltype(decode(std::string_view())) {
  const grpc::Status dumped = buffer->DumpToSingleSlice(slice);
  buffer->Clear();
  if (!dumped.ok()) return absl::InternalError(dumped.error_message());
  auto decoded =
      decode(std::string_view(reinterpret_cast<const char*>(slice->begin()), slice->size()));
  if (!decoded.ok()) {
    return absl::Status(decoded.status().code(), absl::StrCat("message ", n, " of the stream: ",
                                                              decoded.status().message()));
  }
  return decoded;
}

// A message read and decoded into views of its bytes: what goes to the engine, kept
// (bytes and arena) until every shard is done with it.
template <typename Decoded>
struct BorrowedMessage {
  grpc::Slice bytes;
  Decoded decoded;
};

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
    auto message = std::make_unique<BorrowedMessage<DecodedUpdateBatch>>();
    absl::StatusOr<DecodedUpdateBatch> decoded =
        DecodeMessage(&request_, ++messages_, &message->bytes, DecodeUpdateBatch);
    if (!decoded.ok()) {
      {
        absl::MutexLock lock(&mu_);
        read_.Reject(ToGrpcStatus(decoded.status()));
        step = NextStep();
      }
      Run(std::move(step));
      return;
    }
    message->decoded = *std::move(decoded);
    const std::span<const UpdateRef> updates = message->decoded.updates.items;
    Ref();
    // The message's bytes and arena go with the callback: freed once every shard is done.
    env_.engine.ApplyAsync(updates, [this, message = std::move(message)](BatchResult result) {
      OnApplied(message->decoded.seq, message->decoded.updates, std::move(result));
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

  // Runs on a shard thread, holding a reference.
  void OnApplied(uint64_t seq, const ConvertedBatch<UpdateRef>& batch, BatchResult result) {
    result.errors = batch.Merge(std::move(result.errors));
    rejects_.Record("Stream", result.errors);
    v1::Ack ack;
    ToProto(seq, result, &ack);
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
    auto message = std::make_unique<Message>();
    absl::StatusOr<DecodedReplayRequest> decoded = Decode(&message->bytes);
    if (!decoded.ok()) {
      {
        absl::MutexLock lock(&mu_);
        read_.Reject(ToGrpcStatus(decoded.status()));
        step = NextStep();
      }
      Run(std::move(step));
      return;
    }
    if (messages_ == 1) quiet_ = decoded->quiet;
    next_index_ += decoded->profiles;
    message->decoded = *std::move(decoded);
    const std::span<const ProfileRef> profiles = message->decoded.converted.items;
    Ref();
    // The message's bytes and arena go with the callback: freed once every shard is done.
    env_.engine.ReplayAsync(profiles, quiet_,
                            [this, message = std::move(message)](ReplayResult result) {
                              OnReplayed(message->decoded.converted, std::move(result));
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

  // A message read, and its profiles, which borrow its bytes.
  using Message = BorrowedMessage<DecodedReplayRequest>;

  // The message just read, decoded from the wire (see wire_decode.h) into views of
  // `*bytes`.
  absl::StatusOr<DecodedReplayRequest> Decode(grpc::Slice* bytes) {
    return DecodeMessage(&request_, ++messages_, bytes, [&](std::string_view wire) {
      return DecodeReplayRequest(wire, next_index_);
    });
  }

  // On a shard thread, holding a reference.
  void OnReplayed(const ConvertedBatch<ProfileRef>& batch, ReplayResult result) {
    std::vector<UpdateError> errors = batch.Merge(std::move(result.errors));
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

  absl::Mutex mu_;
  ReadAhead read_ ABSL_GUARDED_BY(mu_);
  ReplayResult summary_ ABSL_GUARDED_BY(mu_);
};

grpc::ServerReadReactor<grpc::ByteBuffer>* IngestService::Replay(
    grpc::CallbackServerContext* /*ctx*/, grpc::ByteBuffer* response) {
  return new ReplayReactor(*this, env_, rejects_, response);
}

}  // namespace segd::server
