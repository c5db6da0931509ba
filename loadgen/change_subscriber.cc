#include "loadgen/change_subscriber.h"

#include <grpcpp/generic/generic_stub.h>

#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "loadgen/cluster.h"
#include "loadgen/wire_format.h"
#include "segd/v1/segd.pb.h"

namespace segd::load {
namespace {

const std::string& SubscribeMethod() {
  static const std::string* const method = new std::string("/segd.v1.Changes/Subscribe");
  return *method;
}

// The n of a key "u{n}"; nullopt for any other key.
std::optional<uint64_t> KeyIndex(std::string_view key) {
  if (key.size() < 2 || key[0] != 'u') return std::nullopt;
  uint64_t n = 0;
  const auto [end, ec] = std::from_chars(key.data() + 1, key.data() + key.size(), n);
  if (ec != std::errc() || end != key.data() + key.size()) return std::nullopt;
  return n;
}

}  // namespace

// The server-streaming call, made as a generic bidi call so that batches arrive as raw
// bytes: one write (the SubscribeRequest, half-closing), then reads until the end.
class ChangeSubscriber::Call final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  Call(ChangeSubscriber& owner, std::shared_ptr<grpc::Channel> channel)
      : owner_(owner), stub_(std::move(channel)) {
    v1::SubscribeRequest request;  // every segment, from now
    std::string bytes = request.SerializeAsString();
    const grpc::Slice slice(bytes);
    request_ = grpc::ByteBuffer(&slice, 1);
    stub_.PrepareBidiStreamingCall(&ctx_, SubscribeMethod(), grpc::StubOptions(), this);
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&read_buf_);
    StartCall();
  }

  void OnWriteDone(bool /*ok*/) override {}

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the call is ending; OnDone follows
    const int64_t now = MonoNs();
    grpc::Slice slice;
    if (!read_buf_.DumpToSingleSlice(&slice).ok()) {
      owner_.unmatched_.fetch_add(1, std::memory_order_relaxed);
    } else {
      Scan(std::string_view(reinterpret_cast<const char*>(slice.begin()), slice.size()), now);
    }
    {
      absl::MutexLock lock(&mu_);
      if (!first_batch_) {
        first_batch_ = true;
        cv_.SignalAll();
      }
    }
    StartRead(&read_buf_);
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
    cv_.SignalAll();
  }

  bool AwaitFirstBatch(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + timeout;
    while (!first_batch_ && !done_) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) break;
    }
    return first_batch_ && !done_;
  }

  // Cancels (unless already over) and waits for OnDone. Whether the call was already
  // over before the cancel, and its status.
  std::pair<bool, grpc::Status> Stop() {
    bool ended_before;
    {
      absl::MutexLock lock(&mu_);
      ended_before = done_;
    }
    if (!ended_before) ctx_.TryCancel();
    absl::MutexLock lock(&mu_);
    while (!done_) cv_.Wait(&mu_);
    return {ended_before, status_};
  }

 private:
  void Scan(std::string_view bytes, int64_t now) {
    uint64_t changes = 0, unmatched = 0;
    const Window window = owner_.window();
    SendTimes* const send_times = owner_.send_times_;
    const bool parsed = wire::ScanChangeBatch(bytes, [&](std::string_view key, uint64_t cause) {
      ++changes;
      if (send_times == nullptr || cause != wire::kCauseUpdate) return;
      const std::optional<uint64_t> n = KeyIndex(key);
      if (!n.has_value() || *n >= send_times->keys()) {
        ++unmatched;
        return;
      }
      const int64_t origin = send_times->Get(*n);
      if (origin == 0) {  // a change of an update sent before this run
        ++unmatched;
        return;
      }
      const auto latency = static_cast<uint64_t>(std::max<int64_t>(0, now - origin));
      if (window.Contains(origin)) owner_.window_latency_.Record(latency);
      owner_.interval_latency_.Record(latency);
    });
    if (!parsed) ++unmatched;
    owner_.changes_.fetch_add(changes, std::memory_order_relaxed);
    if (window.Contains(now)) {
      owner_.window_changes_.fetch_add(changes, std::memory_order_relaxed);
      owner_.window_batches_.fetch_add(1, std::memory_order_relaxed);
    }
    if (unmatched > 0) owner_.unmatched_.fetch_add(unmatched, std::memory_order_relaxed);
  }

  ChangeSubscriber& owner_;
  grpc::GenericStub stub_;
  grpc::ClientContext ctx_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer read_buf_;

  absl::Mutex mu_;
  absl::CondVar cv_;
  bool first_batch_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

ChangeSubscriber::ChangeSubscriber(std::shared_ptr<grpc::Channel> channel, std::string server,
                                   SendTimes* send_times)
    : server_(std::move(server)), send_times_(send_times) {
  call_ = std::make_unique<Call>(*this, std::move(channel));
}

ChangeSubscriber::~ChangeSubscriber() = default;

void ChangeSubscriber::SetWindow(const Window& window) {
  window_start_.store(window.start_ns, std::memory_order_relaxed);
  window_end_.store(window.end_ns, std::memory_order_relaxed);
}

bool ChangeSubscriber::AwaitFirstBatch(absl::Duration timeout) {
  return call_->AwaitFirstBatch(timeout);
}

absl::Status ChangeSubscriber::Stop() {
  const auto [ended_before, status] = call_->Stop();
  if (!ended_before) return absl::OkStatus();  // cancelled by us, as intended
  if (status.ok()) {
    return absl::UnavailableError(absl::StrCat(server_, ": Changes.Subscribe ended early"));
  }
  return FromGrpc(status, absl::StrCat(server_, ": Changes.Subscribe"));
}

}  // namespace segd::load
