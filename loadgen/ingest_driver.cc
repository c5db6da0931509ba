#include "loadgen/ingest_driver.h"

#include <grpcpp/generic/generic_stub.h>
#include <sys/prctl.h>

#include <deque>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "loadgen/wire_format.h"
#include "segd/v1/segd.pb.h"

namespace segd::load {
namespace {

const std::string& StreamMethod() {
  static const std::string* const method = new std::string("/segd.v1.Ingest/Stream");
  return *method;
}

// How long Run waits for the acks of what was sent once the window is over, before it
// cancels the streams.
constexpr absl::Duration kDrainTimeout = absl::Seconds(60);

// `bytes` as a slice that owns them (no copy).
grpc::Slice OwningSlice(std::string&& bytes) {
  auto* owned = new std::string(std::move(bytes));
  return grpc::Slice(
      owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
}

}  // namespace

// A batch waiting in a stream: its UpdateBatch.updates bytes, its keys, and its due time
// (0 in closed loop, where the latency origin is the send).
struct IngestDriver::Outgoing {
  grpc::Slice updates;
  std::vector<uint32_t> keys;
  uint32_t count = 0;
  int64_t due_ns = 0;
};

// One Ingest.Stream call over raw bytes.
//
// The generator Pushes batches into queued_; a batch is written when no write is in flight
// and fewer than in_flight batches await their Ack, with the next seq, prefixed to its
// pre-serialized updates. Acks free slots; each is matched to its batch by seq (the server
// acks in completion order, which need not be the send order).
//
// A hold (AddHold) keeps the call from completing while the generator may still start a
// write from its own thread; it is released once the stream has half-closed (Close, after
// the last Ack) or broken (a failed read or write: the server ended the call). After OnDone
// the call is over and Await returns its status.
//
// Thread safety: Push, HasRoom, Close and Cancel may run on any thread concurrently with
// the reactions; state is guarded by mu_, and gRPC operations are started outside it, in
// the order the decision under the lock produced them.
class IngestDriver::StreamCall final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamCall(IngestDriver& driver, std::shared_ptr<grpc::Channel> channel, int server)
      : driver_(driver), stub_(std::move(channel)), server_(server) {}

  void Start() {
    stub_.PrepareBidiStreamingCall(&ctx_, StreamMethod(), grpc::StubOptions(), this);
    AddHold();
    StartRead(&read_buf_);
    StartCall();
  }

  // Whether the stream takes another batch now (fewer than `max_queued` waiting).
  bool HasRoom(size_t max_queued) {
    absl::MutexLock lock(&mu_);
    return !broken_ && !closing_ && queued_.size() < max_queued;
  }

  bool usable() {
    absl::MutexLock lock(&mu_);
    return !broken_ && !closing_;
  }

  // REQUIRES: HasRoom was true (only the generator pushes, and room only grows meanwhile).
  void Push(Outgoing batch) {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      queued_.push_back(std::move(batch));
      step = NextStep();
    }
    Run(std::move(step));
  }

  // No more batches: drops those still queued (returns how many) and half-closes once
  // every Ack is in.
  uint64_t Close() {
    Step step;
    uint64_t dropped;
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
      dropped = queued_.size();
      queued_.clear();
      step = NextStep();
    }
    Run(std::move(step));
    return dropped;
  }

  void Cancel() { ctx_.TryCancel(); }

  // Waits up to `timeout` for the call to end; its status, or nullopt on timeout.
  std::optional<grpc::Status> AwaitFor(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + timeout;
    while (!done_) {
      if (done_cv_.WaitWithDeadline(&mu_, deadline)) break;
    }
    if (!done_) return std::nullopt;
    return status_;
  }

  int server() const { return server_; }

  void OnWriteDone(bool ok) override {
    Step step;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) broken_ = true;
      step = NextStep();
    }
    Run(std::move(step));
    driver_.NotifyRoom();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the server ended the call (after our half-close, or on an error)
      Step step;
      {
        absl::MutexLock lock(&mu_);
        broken_ = true;
        queued_.clear();
        step = NextStep();
      }
      Run(std::move(step));
      driver_.NotifyRoom();
      return;
    }
    const int64_t now = MonoNs();
    v1::Ack ack;
    const bool parsed = grpc::SerializationTraits<v1::Ack>::Deserialize(&read_buf_, &ack).ok();
    std::optional<Sent> sent;
    Step step;
    {
      absl::MutexLock lock(&mu_);
      if (parsed) {
        auto it = sent_.find(ack.seq());
        if (it != sent_.end()) {
          sent = it->second;
          sent_.erase(it);
        }
      }
      step = NextStep();
    }
    if (!sent.has_value()) {  // not an Ack of ours: the stream cannot be trusted any more
      ctx_.TryCancel();
    } else {
      driver_.in_flight_batches_.fetch_sub(1, std::memory_order_relaxed);
      driver_.OnAcked(sent->origin_ns, now, ack.applied(), static_cast<uint32_t>(ack.errors_size()),
                      ack.errors_size() > 0 ? ack.errors(0).message() : std::string());
    }
    Run(std::move(step));
    driver_.NotifyRoom();
    StartRead(&read_buf_);
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    driver_.in_flight_batches_.fetch_sub(sent_.size(), std::memory_order_relaxed);
    sent_.clear();
    status_ = status;
    done_ = true;
    done_cv_.SignalAll();
  }

 private:
  struct Sent {
    int64_t origin_ns;
    uint32_t count;
  };

  // The operations one decision under mu_ calls for.
  struct Step {
    bool write = false;  // write write_buf_, after stamping `keys` with `origin_ns`
    std::vector<uint32_t> keys;
    uint32_t count = 0;
    int64_t origin_ns = 0;
    bool writes_done = false;
    bool remove_hold = false;
  };

  Step NextStep() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Step step;
    if (!writing_ && !broken_ && !queued_.empty() &&
        sent_.size() < static_cast<size_t>(driver_.options_.in_flight)) {
      Outgoing batch = std::move(queued_.front());
      queued_.pop_front();
      const uint64_t seq = next_seq_++;
      const int64_t now = MonoNs();
      step.origin_ns = batch.due_ns != 0 ? batch.due_ns : now;
      step.count = batch.count;
      step.keys = std::move(batch.keys);
      sent_.emplace(seq, Sent{step.origin_ns, batch.count});
      std::string prefix;
      wire::AppendVarintField(wire::kUpdateBatchSeq, seq, &prefix);
      const grpc::Slice slices[2] = {grpc::Slice(prefix), std::move(batch.updates)};
      write_buf_ = grpc::ByteBuffer(slices, 2);
      writing_ = true;
      step.write = true;
    }
    if (closing_ && !broken_ && !writing_ && !writes_done_ && queued_.empty() && sent_.empty()) {
      writes_done_ = true;
      step.writes_done = true;
    }
    if (!hold_released_ && !writing_ && (writes_done_ || broken_)) {
      hold_released_ = true;
      step.remove_hold = true;
    }
    return step;
  }

  // REQUIRES: not holding mu_.
  void Run(Step step) {
    if (step.write) {
      // Stamp the keys before the bytes leave, so that no change can arrive first.
      if (driver_.send_times_ != nullptr) {
        for (uint32_t key : step.keys) driver_.send_times_->Mark(key, step.origin_ns);
      }
      driver_.sent_updates_.fetch_add(step.count, std::memory_order_relaxed);
      driver_.in_flight_batches_.fetch_add(1, std::memory_order_relaxed);
      if (driver_.options_.window.Contains(MonoNs())) {
        driver_.window_sent_.fetch_add(step.count, std::memory_order_relaxed);
      }
      StartWrite(&write_buf_);
    }
    if (step.writes_done) StartWritesDone();
    if (step.remove_hold) RemoveHold();
  }

  IngestDriver& driver_;
  grpc::GenericStub stub_;
  const int server_;
  grpc::ClientContext ctx_;
  grpc::ByteBuffer read_buf_;   // the outstanding read's
  grpc::ByteBuffer write_buf_;  // the write in flight's; set only while none is

  absl::Mutex mu_;
  std::deque<Outgoing> queued_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Sent> sent_ ABSL_GUARDED_BY(mu_);  // by seq, awaiting Acks
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool writes_done_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  absl::CondVar done_cv_;
};

IngestDriver::IngestDriver(const Cluster& cluster, std::unique_ptr<UpdateStream> updates,
                           const IngestOptions& options, SendTimes* send_times)
    : cluster_(cluster),
      updates_(std::move(updates)),
      options_(options),
      send_times_(send_times),
      streams_(static_cast<size_t>(cluster.size())),
      next_stream_(static_cast<size_t>(cluster.size()), 0) {}

IngestDriver::~IngestDriver() = default;

IngestCounters IngestDriver::counters() const {
  IngestCounters c;
  c.sent_updates = sent_updates_.load(std::memory_order_relaxed);
  c.acked_updates = acked_updates_.load(std::memory_order_relaxed);
  c.rejected_updates = rejected_updates_.load(std::memory_order_relaxed);
  c.in_flight_batches = in_flight_batches_.load(std::memory_order_relaxed);
  return c;
}

IngestResult IngestDriver::result() const {
  IngestResult r;
  r.seconds = options_.window.seconds();
  r.sent_updates = window_sent_.load(std::memory_order_relaxed);
  r.acked_updates = window_acked_.load(std::memory_order_relaxed);
  r.rejected_updates = window_rejected_.load(std::memory_order_relaxed);
  r.updates_per_s = r.seconds > 0 ? static_cast<double>(r.acked_updates) / r.seconds : 0;
  r.sent_per_s = r.seconds > 0 ? static_cast<double>(r.sent_updates) / r.seconds : 0;
  r.unsent_batches = unsent_batches_;
  absl::MutexLock lock(&rejection_mu_);
  r.first_rejection = first_rejection_;
  return r;
}

void IngestDriver::OnAcked(int64_t origin_ns, int64_t now_ns, uint32_t applied, uint32_t rejected,
                           const std::string& first_rejection) {
  acked_updates_.fetch_add(applied, std::memory_order_relaxed);
  rejected_updates_.fetch_add(rejected, std::memory_order_relaxed);
  const Window& window = options_.window;
  if (window.Contains(now_ns)) {
    window_acked_.fetch_add(applied, std::memory_order_relaxed);
    window_rejected_.fetch_add(rejected, std::memory_order_relaxed);
  }
  const uint64_t latency = static_cast<uint64_t>(std::max<int64_t>(0, now_ns - origin_ns));
  if (window.Contains(origin_ns)) window_ack_.Record(latency);
  interval_ack_.Record(latency);
  if (rejected > 0) {
    absl::MutexLock lock(&rejection_mu_);
    if (first_rejection_.empty()) first_rejection_ = first_rejection;
  }
}

void IngestDriver::NotifyRoom() {
  absl::MutexLock lock(&room_mu_);
  ++room_events_;
  room_cv_.SignalAll();
}

IngestDriver::StreamCall* IngestDriver::StreamWithRoom(int server, size_t max_queued) {
  auto& streams = streams_[static_cast<size_t>(server)];
  size_t& next = next_stream_[static_cast<size_t>(server)];
  while (true) {
    uint64_t seen;
    {
      absl::MutexLock lock(&room_mu_);
      seen = room_events_;
    }
    bool any_usable = false;
    for (size_t i = 0; i < streams.size(); ++i) {
      StreamCall* stream = streams[(next + i) % streams.size()].get();
      if (stream->HasRoom(max_queued)) {
        next = (next + i + 1) % streams.size();
        return stream;
      }
      any_usable = any_usable || stream->usable();
    }
    if (!any_usable) return nullptr;
    const int64_t now = MonoNs();
    if (now >= options_.window.end_ns) return nullptr;
    // Wait for an ack or a finished write to free room (or for the window's end).
    absl::MutexLock lock(&room_mu_);
    const absl::Duration left = absl::Nanoseconds(options_.window.end_ns - now);
    if (room_events_ == seen)
      room_cv_.WaitWithTimeout(&room_mu_, std::min(left, absl::Milliseconds(100)));
  }
}

void IngestDriver::Generate() {
  const bool open_loop = options_.rate > 0;
  // Sleeps end at the due time: with the default timer slack they end up to 50 us after
  // it, and every batch would be sent that much late and charged for it.
  if (open_loop) prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  const double ns_per_update = open_loop ? 1e9 / options_.rate : 0;
  const size_t max_queued =
      static_cast<size_t>(open_loop ? options_.max_queued : options_.in_flight);
  const int64_t start = MonoNs();
  UpdateStream::Batch batch;
  while (true) {
    updates_->Next(&batch);
    int64_t due = 0;
    if (open_loop) {
      due = start + static_cast<int64_t>(static_cast<double>(updates_->drawn()) * ns_per_update);
      if (due >= options_.window.end_ns) return;
      const int64_t now = MonoNs();
      if (due > now) absl::SleepFor(absl::Nanoseconds(due - now));
    } else if (MonoNs() >= options_.window.end_ns) {
      return;
    }
    // Null when the window is over, or when every stream of the server is broken (the
    // run is over then; Run reports why).
    StreamCall* stream = StreamWithRoom(batch.server, max_queued);
    if (stream == nullptr) return;
    Outgoing out;
    out.count = static_cast<uint32_t>(batch.keys.size());
    out.keys = std::move(batch.keys);
    out.updates = OwningSlice(std::move(batch.updates));
    out.due_ns = due;
    stream->Push(std::move(out));
    batch.keys.clear();
    batch.updates.clear();
  }
}

absl::Status IngestDriver::Run() {
  for (int s = 0; s < cluster_.size(); ++s) {
    for (int i = 0; i < options_.streams_per_server; ++i) {
      streams_[s].push_back(std::make_unique<StreamCall>(*this, cluster_.NewChannel(s), s));
      streams_[s].back()->Start();
    }
  }
  Generate();
  for (auto& server_streams : streams_) {
    for (auto& stream : server_streams) unsent_batches_ += stream->Close();
  }
  absl::Status first_error;
  const absl::Time deadline = absl::Now() + kDrainTimeout;
  for (auto& server_streams : streams_) {
    for (auto& stream : server_streams) {
      std::optional<grpc::Status> status =
          stream->AwaitFor(std::max(absl::ZeroDuration(), deadline - absl::Now()));
      if (!status.has_value()) {
        stream->Cancel();
        status = stream->AwaitFor(absl::InfiniteDuration());
        if (first_error.ok()) {
          first_error = absl::DeadlineExceededError(
              absl::StrCat(cluster_.servers()[stream->server()], ": Ingest.Stream: acks still ",
                           "missing ", absl::FormatDuration(kDrainTimeout), " after the run"));
        }
      }
      if (!status->ok() && first_error.ok()) {
        first_error = FromGrpc(
            *status, absl::StrCat(cluster_.servers()[stream->server()], ": Ingest.Stream"));
      }
    }
  }
  return first_error;
}

}  // namespace segd::load
