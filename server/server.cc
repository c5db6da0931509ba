#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>

#include "absl/strings/str_cat.h"
#include "core/thread_name.h"
#include "server/admin_service.h"
#include "server/changes_service.h"
#include "server/ingest_service.h"
#include "server/query_service.h"
#include "server/segments_service.h"

namespace segd::server {
namespace {

// Under the system clock, time-driven changes must be applied within 1 s of their due
// time (SPEC §3); ticking ten times a second leaves room for a slow tick.
constexpr absl::Duration kTickInterval = absl::Milliseconds(100);
constexpr absl::Duration kDrainGrace = absl::Milliseconds(100);

// Counts the calls in progress: gRPC creates one interceptor per call and destroys it
// when the call is over, so a drain can tell when the last call has ended.
class CallCounter final : public grpc::experimental::Interceptor {
 public:
  explicit CallCounter(std::atomic<int>* calls) : calls_(calls) { calls_->fetch_add(1); }
  ~CallCounter() override { calls_->fetch_sub(1); }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  std::atomic<int>* calls_;
};

class CallCounterFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallCounterFactory(std::atomic<int>* calls) : calls_(calls) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo*) override {
    return new CallCounter(calls_);
  }

 private:
  std::atomic<int>* calls_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  std::unique_ptr<Server> s(new Server());
  const int shards =
      options.shards > 0 ? options.shards : std::max(1u, std::thread::hardware_concurrency());
  if (options.manual_clock) {
    const int64_t start =
        options.start_time_ms >= 0 ? options.start_time_ms : SystemClock().NowMs();
    s->clock_ = std::make_unique<ManualClock>(start);
  } else {
    s->clock_ = std::make_unique<SystemClock>();
  }
  s->executor_ = std::make_unique<ThreadedExecutor>(shards);
  s->engine_ = std::make_unique<Engine>(options.engine, shards, *s->clock_, s->executor_.get());
  s->env_ =
      std::make_unique<ServiceEnv>(*s->engine_, options.manual_clock, options.max_message_bytes);
  s->ingest_ = std::make_unique<IngestService>(*s->env_);
  s->segments_ = std::make_unique<SegmentsService>(*s->env_);
  s->changes_ = std::make_unique<ChangesService>(*s->env_);
  s->query_ = std::make_unique<QueryService>(*s->env_);
  s->admin_ = std::make_unique<AdminService>(*s->env_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &s->port_);
  // gRPC binds with SO_REUSEPORT by default: a second segd started on a port one already
  // listens on would start too, and the kernel would split new connections between the
  // two — producers' updates landing in a shard that is not the one the ring names.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(s->ingest_.get());
  builder.RegisterService(s->segments_.get());
  builder.RegisterService(s->changes_.get());
  builder.RegisterService(s->query_.get());
  builder.RegisterService(s->admin_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> counters;
  counters.push_back(std::make_unique<CallCounterFactory>(&s->active_calls_));
  builder.experimental().SetInterceptorCreators(std::move(counters));
  s->grpc_ = builder.BuildAndStart();
  if (s->grpc_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen,
                                               " (in use by another process, or not an "
                                               "address of this machine?)"));
  }
  s->grpc_->GetHealthCheckService()->SetServingStatus(true);
  if (!options.manual_clock) {
    s->ticker_ = std::thread([raw = s.get()] {
      NameThisThread("segd-ticker");
      raw->RunTicker();
    });
  }
  return s;
}

void Server::RunTicker() {
  while (!stopping_.WaitForNotificationWithTimeout(kTickInterval)) engine_->Tick();
}

void Server::Shutdown(absl::Duration deadline) {
  if (shutdown_started_.exchange(true)) {
    Wait();
    return;
  }
  const absl::Time give_up = absl::Now() + deadline;
  env_->draining = true;
  grpc_->GetHealthCheckService()->SetServingStatus(false);
  changes_->FinishAll();
  ingest_->FinishAll();
  // Calls still reach the handlers, which answer UNAVAILABLE, while the calls in
  // progress finish — until none is left or the deadline comes. Then gRPC stops at once:
  // waiting on would only wait for idle client connections to go.
  absl::SleepFor(std::min(deadline, kDrainGrace));
  while (active_calls_.load() > 0 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  grpc_->Shutdown(std::chrono::system_clock::now());
  stopping_.Notify();
  if (ticker_.joinable()) ticker_.join();
  grpc_->Wait();
  stopped_.Notify();
}

void Server::Wait() { stopped_.WaitForNotification(); }

Server::~Server() {
  if (grpc_ != nullptr) Shutdown(absl::Seconds(1));
  // The services go first; then the executor runs what is still queued and stops its
  // threads while the engine those tasks use is still there.
  grpc_.reset();
  admin_.reset();
  query_.reset();
  changes_.reset();
  segments_.reset();
  ingest_.reset();
  executor_.reset();
  engine_.reset();
}

}  // namespace segd::server
