#include "server/segments_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/rule.h"
#include "core/segment_catalog.h"
#include "server/convert.h"

// Every handler is a unary call on the default reactor: it converts the request, starts
// one asynchronous engine operation and returns; the operation's `done` (on a shard
// thread) fills the response and finishes the call. Nothing here blocks.
namespace segd::server {
namespace {

double ElapsedMs(absl::Time start) { return absl::ToDoubleMilliseconds(absl::Now() - start); }

}  // namespace

grpc::ServerUnaryReactor* SegmentsService::PutSegment(grpc::CallbackServerContext* ctx,
                                                      const v1::PutSegmentRequest* request,
                                                      v1::PutSegmentResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (Refused(reactor, env_)) return reactor;
  const bool dry_run = request->dry_run();
  // Only for the log line: whether this put creates the segment or replaces its rule. A
  // concurrent put of the same id may make it stale; the definition itself is not.
  const bool replace = !dry_run && env_.engine.catalog()->Find(request->segment().id()) != nullptr;
  env_.engine.PutSegmentAsync(
      SegmentSpecFromProto(request->segment()), dry_run,
      [reactor, response, dry_run, replace,
       start = absl::Now()](absl::StatusOr<PutSegmentResult> result) {
        if (!result.ok()) {
          reactor->Finish(ToGrpcStatus(result.status()));
          return;
        }
        if (!dry_run) {
          spdlog::info("segment {}: id={} entered={} exited={} members={} elapsed_ms={:.3f}",
                       replace ? "replace" : "put", result->segment.id, result->entered,
                       result->exited, result->segment.member_count, ElapsedMs(start));
        }
        ToProto(*result, response);
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerUnaryReactor* SegmentsService::DeleteSegment(grpc::CallbackServerContext* ctx,
                                                         const v1::DeleteSegmentRequest* request,
                                                         v1::DeleteSegmentResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (Refused(reactor, env_, ValidateSegmentId(request->id()))) return reactor;
  env_.engine.DeleteSegmentAsync(
      request->id(), [reactor, response, id = request->id(),
                      start = absl::Now()](absl::StatusOr<uint64_t> exited) {
        if (!exited.ok()) {
          reactor->Finish(ToGrpcStatus(exited.status()));
          return;
        }
        spdlog::info("segment delete: id={} entered=0 exited={} members=0 elapsed_ms={:.3f}", id,
                     *exited, ElapsedMs(start));
        response->set_exited(*exited);
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerUnaryReactor* SegmentsService::GetSegment(grpc::CallbackServerContext* ctx,
                                                      const v1::GetSegmentRequest* request,
                                                      v1::Segment* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (Refused(reactor, env_, ValidateSegmentId(request->id()))) return reactor;
  env_.engine.GetSegmentAsync(request->id(),
                              [reactor, response](absl::StatusOr<SegmentInfo> segment) {
                                if (!segment.ok()) {
                                  reactor->Finish(ToGrpcStatus(segment.status()));
                                  return;
                                }
                                ToProto(*segment, response);
                                reactor->Finish(grpc::Status::OK);
                              });
  return reactor;
}

grpc::ServerUnaryReactor* SegmentsService::ListSegments(grpc::CallbackServerContext* ctx,
                                                        const v1::ListSegmentsRequest* request,
                                                        v1::ListSegmentsResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (Refused(reactor, env_)) return reactor;
  env_.engine.ListSegmentsAsync([reactor, response](std::vector<SegmentInfo> segments) {
    std::sort(segments.begin(), segments.end(),
              [](const SegmentInfo& a, const SegmentInfo& b) { return a.id < b.id; });
    response->mutable_segments()->Reserve(static_cast<int>(segments.size()));
    for (const SegmentInfo& s : segments) ToProto(s, response->add_segments());
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* SegmentsService::ValidateRule(grpc::CallbackServerContext* ctx,
                                                        const v1::ValidateRuleRequest* request,
                                                        v1::ValidateRuleResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (Refused(reactor, env_)) return reactor;
  // Parsing is bounded by the rule limits (16 KiB, depth 64): cheap enough to do here.
  // References to segments are not resolved: a rule may name a segment defined later.
  const std::vector<Diagnostic> diagnostics = env_.engine.ValidateRule(request->rule());
  ToProto(diagnostics, response);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace segd::server
