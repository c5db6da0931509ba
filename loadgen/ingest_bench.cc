// segd-ingest-bench: a simple ingest driver for one segd over gRPC (the issue #3
// figure; segload, the full generator, comes with the performance issue). Preloads the
// standard profiles through Ingest.Replay, puts the 20 standard segments, then streams
// the standard update mix over several Ingest.Stream calls at full speed and reports
// updates/s and ack latency.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "loadgen/workload.h"
#include "segd/v1/segd.grpc.pb.h"
#include "server/convert.h"

ABSL_FLAG(std::string, server, "127.0.0.1:7070", "the segd to drive");
ABSL_FLAG(uint64_t, profiles, 1'000'000, "profiles u0 ... u{N-1}");
ABSL_FLAG(bool, preload, true, "replay the profiles and put the standard segments first");
ABSL_FLAG(double, seconds, 30, "how long to stream updates");
ABSL_FLAG(int, streams, 4, "parallel Ingest.Stream calls");
ABSL_FLAG(int, batch, 512, "updates per UpdateBatch");
ABSL_FLAG(int, in_flight, 8, "batches sent but not yet acked, per stream");
ABSL_FLAG(uint64_t, seed, 1, "workload seed");

namespace segd {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Preload(v1::Ingest::Stub& ingest, v1::Segments::Stub& segments, uint64_t n, uint64_t seed) {
  WorkloadOptions options;
  options.profiles = n;
  options.seed = seed;
  Workload workload(options);
  const int64_t now = WallNowMs();
  grpc::ClientContext ctx;
  v1::ReplaySummary summary;
  auto writer = ingest.Replay(&ctx, &summary);
  const auto start = Clock::now();
  constexpr uint64_t kChunk = 1000;
  for (uint64_t first = 0; first < n; first += kChunk) {
    v1::ReplayRequest request;
    request.set_quiet(true);
    for (uint64_t i = first; i < std::min(n, first + kChunk); ++i) {
      server::ToProto(workload.MakeProfile(i, now), request.add_profiles());
    }
    if (!writer->Write(request)) break;
    if ((first / kChunk) % 100 == 0) {
      std::fprintf(stderr, "\rpreload: %llu/%llu profiles", static_cast<unsigned long long>(first),
                   static_cast<unsigned long long>(n));
    }
  }
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  const double took = Seconds(Clock::now() - start);
  std::fprintf(stderr, "\rpreload: %llu profiles in %.1f s (%.0f profiles/s, errors %d) %s\n",
               static_cast<unsigned long long>(summary.profiles()), took, summary.profiles() / took,
               summary.errors_size(), status.ok() ? "" : status.error_message().c_str());
  for (const SegmentSpec& spec : Workload::StandardSegments()) {
    grpc::ClientContext put_ctx;
    v1::PutSegmentRequest put;
    put.mutable_segment()->set_id(spec.id);
    put.mutable_segment()->set_rule(spec.rule);
    v1::PutSegmentResponse response;
    const grpc::Status s = segments.PutSegment(&put_ctx, put, &response);
    if (!s.ok())
      std::fprintf(stderr, "segment %s: %s\n", spec.id.c_str(), s.error_message().c_str());
  }
}

struct StreamResult {
  uint64_t updates = 0;
  uint64_t errors = 0;
  std::vector<double> ack_ms;
};

// One Ingest.Stream: a writer sending pre-built batches round-robin (events at time 0,
// "the server's now", so batches can be sent again), and this thread reading Acks.
StreamResult RunStream(v1::Ingest::Stub& ingest, const std::vector<v1::UpdateBatch>& batches,
                       Clock::time_point until, int in_flight) {
  StreamResult result;
  grpc::ClientContext ctx;
  auto stream = ingest.Stream(&ctx);
  absl::Mutex mu;
  int outstanding = 0;
  std::vector<Clock::time_point> sent_at;
  std::atomic<bool> writing_done{false};
  std::thread writer([&] {
    for (uint64_t seq = 0; Clock::now() < until; ++seq) {
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(
            +[](int* n) { return *n < absl::GetFlag(FLAGS_in_flight); }, &outstanding));
        ++outstanding;
        sent_at.push_back(Clock::now());
      }
      v1::UpdateBatch batch = batches[seq % batches.size()];
      batch.set_seq(seq);
      if (!stream->Write(batch)) break;
    }
    stream->WritesDone();
    writing_done = true;
  });
  v1::Ack ack;
  while (stream->Read(&ack)) {
    absl::MutexLock lock(&mu);
    result.ack_ms.push_back(Seconds(Clock::now() - sent_at[ack.seq()]) * 1000);
    result.updates += ack.applied();
    result.errors += ack.errors_size();
    --outstanding;
  }
  writer.join();
  const grpc::Status status = stream->Finish();
  if (!status.ok()) std::fprintf(stderr, "stream: %s\n", status.error_message().c_str());
  (void)in_flight;
  return result;
}

int Main() {
  const uint64_t profiles = absl::GetFlag(FLAGS_profiles);
  auto channel_args = grpc::ChannelArguments();
  channel_args.SetMaxSendMessageSize(64 << 20);
  channel_args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server),
                                           grpc::InsecureChannelCredentials(), channel_args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    std::fprintf(stderr, "cannot reach %s\n", absl::GetFlag(FLAGS_server).c_str());
    return 1;
  }
  auto ingest = v1::Ingest::NewStub(channel);
  auto segments = v1::Segments::NewStub(channel);
  if (absl::GetFlag(FLAGS_preload))
    Preload(*ingest, *segments, profiles, absl::GetFlag(FLAGS_seed));

  const int streams = absl::GetFlag(FLAGS_streams);
  std::vector<std::vector<v1::UpdateBatch>> batches(streams);
  for (int s = 0; s < streams; ++s) {
    WorkloadOptions options;
    options.profiles = profiles;
    options.seed = absl::GetFlag(FLAGS_seed) * 1000 + s;
    Workload workload(options);
    ProfileUpdate u;
    for (int b = 0; b < 64; ++b) {
      v1::UpdateBatch& batch = batches[s].emplace_back();
      for (int i = 0; i < absl::GetFlag(FLAGS_batch); ++i) {
        workload.NextUpdate(0, &u);
        for (Event& e : u.events) e.time = 0;  // the server's now
        server::ToProto(u, batch.add_updates());
      }
    }
  }

  const auto start = Clock::now();
  const auto until = start + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds)));
  std::vector<StreamResult> results(streams);
  std::vector<std::thread> threads;
  for (int s = 0; s < streams; ++s) {
    threads.emplace_back([&, s] {
      results[s] = RunStream(*ingest, batches[s], until, absl::GetFlag(FLAGS_in_flight));
    });
  }
  for (std::thread& t : threads) t.join();
  const double took = Seconds(Clock::now() - start);
  uint64_t updates = 0, errors = 0;
  std::vector<double> latencies;
  for (const StreamResult& r : results) {
    updates += r.updates;
    errors += r.errors;
    latencies.insert(latencies.end(), r.ack_ms.begin(), r.ack_ms.end());
  }
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    return latencies.empty() ? 0.0
                             : latencies[std::min(latencies.size() - 1,
                                                  static_cast<size_t>(p * latencies.size()))];
  };
  std::printf("%-28s %14s\n", "figure", "value");
  std::printf("%-28s %14s\n", "ingest, updates/s", absl::StrFormat("%.0f", updates / took).c_str());
  std::printf("%-28s %14llu\n", "updates acked", static_cast<unsigned long long>(updates));
  std::printf("%-28s %14llu\n", "update errors", static_cast<unsigned long long>(errors));
  std::printf("%-28s %14.2f\n", "ack latency p50, ms", pct(0.50));
  std::printf("%-28s %14.2f\n", "ack latency p99, ms", pct(0.99));
  std::printf("%-28s %14d\n", "streams x batch", streams * absl::GetFlag(FLAGS_batch));
  return errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace segd

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return segd::Main();
}
