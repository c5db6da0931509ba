#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/change.h"
#include "core/cursor.h"
#include "core/engine.h"
#include "core/evaluator.h"
#include "core/profile_update.h"
#include "core/rule.h"
#include "core/segment_catalog.h"
#include "core/value.h"
#include "segd/v1/segd.pb.h"

// Conversions between the wire messages of segd.v1 (SPEC §5) and the engine's types.
//
// Proto -> core checks only what the engine's types cannot express (a Value whose oneof
// is unset); everything else (keys, names, UTF-8, NaN, lists in event properties) is the
// engine's to validate. Errors are INVALID_ARGUMENT with a message that starts with the
// location of the bad value, in the engine's notation: `set["age"]: value has no kind`,
// `events[2].properties["amount"]: value has no kind`.
//
// Proto maps have no order; they become NamedValues sorted by name, so that what the
// engine sees (and reports by position) does not depend on the map's iteration order.
namespace segd::server {

using ProtoValueMap = google::protobuf::Map<std::string, v1::Value>;

// Proto -> core. `where` names the value or map in error messages: `set["age"]` for a
// value, `set` for a map (whose entries become `set["name"]`), `events[2]` for an event.
absl::StatusOr<Value> ValueFromProto(const v1::Value& value, std::string_view where);
absl::StatusOr<NamedValues> NamedValuesFromProto(const ProtoValueMap& values,
                                                 std::string_view where);
absl::StatusOr<Event> EventFromProto(const v1::Event& event, std::string_view where);
absl::StatusOr<ProfileUpdate> UpdateFromProto(const v1::ProfileUpdate& update);
// For Replay: `segments` is output only and ignored.
absl::StatusOr<ProfileData> ProfileFromProto(const v1::Profile& profile);
// The message of an entry without a kind in the map `where`: `set["age"]: value has no kind`.
std::string ValueWithoutKind(std::string_view where, std::string_view name);
// For PutSegment: `member_count` and `updated_at` are output only and ignored.
SegmentSpec SegmentSpecFromProto(const v1::Segment& segment);

// The part of a batch (of updates, or of replayed profiles) that converted, and the
// errors of the rest. A bad entry rejects only itself (SPEC §2): the engine is called
// with `items`, and its errors, which index into `items`, are put back in terms of the
// request by Merge.
template <typename T>
struct ConvertedBatch {
  std::vector<T> items;
  std::vector<uint32_t> indexes;    // indexes[i]: the request index of items[i]
  std::vector<UpdateError> errors;  // entries that did not convert, by request index

  // `engine_errors` (indexed into `items`) with request indexes, together with `errors`,
  // sorted by index.
  std::vector<UpdateError> Merge(std::vector<UpdateError> engine_errors) const;
};

// Every update of a batch; request indexes are positions in `updates`.
ConvertedBatch<ProfileUpdate> UpdatesFromProto(
    const google::protobuf::RepeatedPtrField<v1::ProfileUpdate>& updates);
// Profiles of one ReplayRequest; request indexes count from `first_index`, the number of
// profiles in the stream's earlier messages (SPEC §2: indexes are within the stream).
ConvertedBatch<ProfileData> ProfilesFromProto(
    const google::protobuf::RepeatedPtrField<v1::Profile>& profiles, uint32_t first_index);

// `engine_errors` index into `indexes`; returns them mapped through it, merged with
// `converted_errors`, sorted by index.
std::vector<UpdateError> MergeUpdateErrors(std::span<const uint32_t> indexes,
                                           std::span<const UpdateError> converted_errors,
                                           std::vector<UpdateError> engine_errors);

template <typename T>
std::vector<UpdateError> ConvertedBatch<T>::Merge(std::vector<UpdateError> engine_errors) const {
  return MergeUpdateErrors(indexes, errors, std::move(engine_errors));
}

// Core -> proto. Each overwrites every field of `out` it maps to.
void ToProto(const Value& value, v1::Value* out);
void ToProto(const Event& event, v1::Event* out);
// For clients and load generators: an update as it goes on the wire.
void ToProto(const ProfileUpdate& update, v1::ProfileUpdate* out);
// Attributes, events in history order, segments.
void ToProto(const ProfileData& profile, v1::Profile* out);
void ToProto(const SegmentInfo& segment, v1::Segment* out);
void ToProto(const PutSegmentResult& result, v1::PutSegmentResponse* out);
void ToProto(const UpdateError& error, v1::UpdateError* out);
// `result.errors` must already be in request indexes (ConvertedBatch::Merge).
void ToProto(uint64_t seq, const BatchResult& result, v1::Ack* out);
void ToProto(const ReplayResult& result, v1::ReplaySummary* out);
void ToProto(const CountResult& result, v1::CountResponse* out);
void ToProto(const FunnelResult& result, v1::FunnelResponse* out);
void ToProto(const ExplainResult& result, v1::ExplainResponse* out);
void ToProto(const EngineStats& stats, v1::Stats* out);
void ToProto(const Diagnostic& diagnostic, v1::Diagnostic* out);
// `ok` is true exactly when there are no diagnostics.
void ToProto(std::span<const Diagnostic> diagnostics, v1::ValidateRuleResponse* out);

v1::ChangeKind ToProto(ChangeKind kind);
v1::Cause ToProto(Cause cause);

// Cursors travel as opaque bytes (SPEC §4). An empty SubscribeRequest.cursor means
// "from now" and is the caller's to handle: CursorFromBytes("") is INVALID_ARGUMENT.
std::string CursorToBytes(const Cursor& cursor);
absl::StatusOr<Cursor> CursorFromBytes(std::string_view bytes);

// The one place absl status codes become gRPC status codes; the message is kept as is.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace segd::server
