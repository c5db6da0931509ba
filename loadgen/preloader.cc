#include "loadgen/preloader.h"

#include <grpcpp/generic/generic_stub.h>
#include <time.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "loadgen/window.h"
#include "loadgen/wire_format.h"
#include "loadgen/workload.h"
#include "segd/v1/segd.pb.h"

namespace segd::load {
namespace {

const std::string& ReplayMethod() {
  static const std::string* const method = new std::string("/segd.v1.Ingest/Replay");
  return *method;
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

grpc::ByteBuffer OwningBuffer(std::string&& bytes) {
  auto* owned = new std::string(std::move(bytes));
  grpc::Slice slice(
      owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
  return grpc::ByteBuffer(&slice, 1);
}

// A ReplayRequest under construction: `quiet` first, then the profiles.
void StartMessage(std::string* bytes) {
  bytes->clear();
  wire::AppendVarintField(wire::kReplayRequestQuiet, 1, bytes);
}

}  // namespace

Preloader::Preloader(const Cluster& cluster, const std::vector<uint8_t>& shard_of,
                     const PreloadOptions& options)
    : cluster_(cluster), shard_of_(shard_of), options_(options) {
  absl::MutexLock lock(&mu_);
  queues_.resize(static_cast<size_t>(cluster.size()));
}

void Preloader::Abort() {
  absl::MutexLock lock(&mu_);
  aborted_ = true;
  cv_.SignalAll();
}

bool Preloader::Push(int server, Message message) {
  absl::MutexLock lock(&mu_);
  while (!aborted_ && queued_bytes_ >= options_.buffer_bytes) cv_.Wait(&mu_);
  if (aborted_) return false;
  queued_bytes_ += message.bytes.size();
  queues_[static_cast<size_t>(server)].push_back(std::move(message));
  cv_.SignalAll();
  return true;
}

bool Preloader::Pop(int server, Message* message) {
  absl::MutexLock lock(&mu_);
  auto& queue = queues_[static_cast<size_t>(server)];
  while (!aborted_ && queue.empty() && builders_running_ > 0) cv_.Wait(&mu_);
  if (aborted_ || queue.empty()) return false;
  *message = std::move(queue.front());
  queue.pop_front();
  queued_bytes_ -= message->bytes.size();
  cv_.SignalAll();
  return true;
}

// Builders claim keys in chunks of one message's worth per server, so that with one
// server every message holds consecutive keys; with several, each builder keeps a message
// per server and sends it when full (and what is left at the end).
void Preloader::Build() {
  const double cpu_start = ThreadCpuSeconds();
  WorkloadOptions workload_options;
  workload_options.profiles = options_.profiles;
  workload_options.seed = options_.seed;
  const Workload workload(workload_options);
  const size_t servers = static_cast<size_t>(cluster_.size());
  const uint64_t chunk = uint64_t{options_.profiles_per_message} * servers;
  std::vector<Message> filling(servers);
  for (Message& m : filling) StartMessage(&m.bytes);
  bool ok = true;
  const auto flush = [&](size_t server) {
    Message& m = filling[server];
    if (m.profiles == 0) return;
    ok = Push(static_cast<int>(server), std::move(m));
    m = Message();
    StartMessage(&m.bytes);
  };
  ProfileData profile;  // refilled for each profile: its storage is reused
  while (ok) {
    const uint64_t begin = next_key_.fetch_add(chunk, std::memory_order_relaxed);
    if (begin >= options_.profiles) break;
    const uint64_t end = std::min(options_.profiles, begin + chunk);
    for (uint64_t n = begin; n < end && ok; ++n) {
      const size_t server = shard_of_.empty() ? 0 : shard_of_[n];
      Message& m = filling[server];
      workload.MakeProfile(n, options_.now_ms, &profile);
      wire::AppendReplayProfile(profile, &m.bytes);
      built_profiles_.fetch_add(1, std::memory_order_relaxed);
      if (++m.profiles == options_.profiles_per_message) flush(server);
    }
  }
  for (size_t s = 0; s < servers && ok; ++s) flush(s);
  const double cpu = ThreadCpuSeconds() - cpu_start;
  absl::MutexLock lock(&mu_);
  build_cpu_s_ += cpu;
  --builders_running_;
  cv_.SignalAll();
}

absl::Status Preloader::Send(int server, PreloadResult* result) {
  const std::string& address = cluster_.servers()[static_cast<size_t>(server)];
  grpc::GenericStub stub(cluster_.NewChannel(server));
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  void* tag = nullptr;
  bool ok = false;
  // Each operation is started and then waited for on the call's own queue: a blocking call
  // over raw bytes.
  const auto wait = [&] { return cq.Next(&tag, &ok) && ok; };
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub.PrepareCall(&ctx, ReplayMethod(), &cq);
  call->StartCall(nullptr);
  bool alive = wait();
  Message message;
  while (alive && Pop(server, &message)) {
    const uint32_t profiles = message.profiles;
    const grpc::ByteBuffer buffer = OwningBuffer(std::move(message.bytes));
    call->Write(buffer, nullptr);
    alive = wait();
    if (alive) sent_profiles_.fetch_add(profiles, std::memory_order_relaxed);
  }
  grpc::ByteBuffer response;
  v1::ReplaySummary summary;
  if (alive) {
    call->WritesDone(nullptr);
    alive = wait();
  }
  if (alive) {
    call->Read(&response, nullptr);
    alive = wait();
  }
  grpc::Status status;
  call->Finish(&status, nullptr);
  wait();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return FromGrpc(status, absl::StrCat(address, ": Ingest.Replay"));
  if (!alive ||
      !grpc::SerializationTraits<v1::ReplaySummary>::Deserialize(&response, &summary).ok()) {
    return absl::InternalError(absl::StrCat(address, ": Ingest.Replay: no summary"));
  }
  absl::MutexLock lock(&mu_);
  result->profiles += summary.profiles();
  result->events += summary.events();
  result->errors += static_cast<uint64_t>(summary.errors_size());
  if (summary.errors_size() > 0 && result->first_error.empty()) {
    result->first_error = absl::StrCat(summary.errors(0).key(), ": ", summary.errors(0).message());
  }
  return absl::OkStatus();
}

absl::StatusOr<PreloadResult> Preloader::Run() {
  const int threads = std::max(1, options_.build_threads);
  {
    absl::MutexLock lock(&mu_);
    builders_running_ = threads;
  }
  std::vector<std::thread> builders;
  for (int t = 0; t < threads; ++t) builders.emplace_back([this] { Build(); });

  // Build ahead until the buffer is full or everything is built.
  {
    absl::MutexLock lock(&mu_);
    while (builders_running_ > 0 && queued_bytes_ < options_.buffer_bytes) cv_.Wait(&mu_);
  }
  PreloadResult result;
  result.built_ahead = options_.profiles == 0 ? 1.0
                                              : static_cast<double>(built_profiles()) /
                                                    static_cast<double>(options_.profiles);

  const int64_t start = MonoNs();
  absl::Status first_error;
  absl::Mutex error_mu;
  std::vector<std::thread> senders;
  for (int s = 0; s < cluster_.size(); ++s) {
    for (int c = 0; c < std::max(1, options_.calls_per_server); ++c) {
      senders.emplace_back([&, s] {
        absl::Status status = Send(s, &result);
        if (status.ok()) return;
        Abort();
        absl::MutexLock lock(&error_mu);
        if (first_error.ok()) first_error = std::move(status);
      });
    }
  }
  for (std::thread& t : senders) t.join();
  result.seconds = static_cast<double>(MonoNs() - start) / 1e9;
  Abort();  // releases builders still waiting for room, if a sender failed
  for (std::thread& t : builders) t.join();
  if (!first_error.ok()) return first_error;
  absl::MutexLock lock(&mu_);
  result.build_cpu_s = build_cpu_s_;
  return result;
}

}  // namespace segd::load
