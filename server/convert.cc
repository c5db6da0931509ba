#include "server/convert.h"

#include <algorithm>
#include <cassert>
#include <optional>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "core/text.h"

namespace segd::server {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

// `where["name"]`, the engine's notation for an entry of a named-value map.
std::string Entry(std::string_view where, std::string_view name) {
  return absl::StrCat(AsAbsl(where), "[\"", AsAbsl(name), "\"]");
}

void ErrorsToProto(std::span<const UpdateError> errors,
                   google::protobuf::RepeatedPtrField<v1::UpdateError>* out) {
  out->Clear();
  out->Reserve(static_cast<int>(errors.size()));
  for (const UpdateError& e : errors) ToProto(e, out->Add());
}

constexpr char kNoKind[] = ": value has no kind";

// Converts `value`; false if it has no kind (the only way a Value can be invalid).
bool ConvertValue(const v1::Value& value, Value* out) {
  switch (value.kind_case()) {
    case v1::Value::kStringValue:
      *out = Value::String(value.string_value());
      return true;
    case v1::Value::kIntValue:
      *out = Value::Int(value.int_value());
      return true;
    case v1::Value::kFloatValue:
      *out = Value::Float(value.float_value());
      return true;
    case v1::Value::kBoolValue:
      *out = Value::Bool(value.bool_value());
      return true;
    case v1::Value::kTimeValue:
      *out = Value::Time(value.time_value());
      return true;
    case v1::Value::kListValue: {
      const auto& items = value.list_value().values();
      *out = Value::List(std::vector<std::string>(items.begin(), items.end()));
      return true;
    }
    case v1::Value::KIND_NOT_SET:
      break;
  }
  return false;
}

// Converts a map into `out`, sorted by name (map order is unspecified; sorting makes
// the first error reported the same every time). Returns the name of the first value
// without a kind, if any. Locations for messages are built only on error: this runs for
// every property of every update.
std::optional<std::string_view> ConvertNamedValues(const ProtoValueMap& values, NamedValues* out) {
  absl::InlinedVector<const ProtoValueMap::value_type*, 8> entries;
  entries.reserve(values.size());
  for (const auto& entry : values) entries.push_back(&entry);
  std::sort(entries.begin(), entries.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  out->clear();
  out->reserve(entries.size());
  for (const auto* entry : entries) {
    out->emplace_back(entry->first, Value());
    if (!ConvertValue(entry->second, &out->back().second)) return entry->first;
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<Event>> EventsFromProto(
    const google::protobuf::RepeatedPtrField<v1::Event>& events) {
  std::vector<Event> out(events.size());
  for (int i = 0; i < events.size(); ++i) {
    const v1::Event& e = events[i];
    Event& event = out[i];
    if (std::optional<std::string_view> bad =
            ConvertNamedValues(e.properties(), &event.properties)) {
      return Invalid(ValueWithoutKind(absl::StrCat("events[", i, "].properties"), *bad));
    }
    event.type = e.type();
    event.time = e.time();
    event.id = e.id();
  }
  return out;
}

void NamedValuesToProto(const NamedValues& values, ProtoValueMap* out) {
  out->clear();
  for (const auto& [name, value] : values) ToProto(value, &(*out)[name]);
}

// Converts every entry of `from` with `convert(entry)`, keeping the good ones and an
// UpdateError (index first_index + position, the entry's key) for each bad one.
template <typename T, typename P, typename Convert>
ConvertedBatch<T> ConvertEach(const google::protobuf::RepeatedPtrField<P>& from,
                              uint32_t first_index, const Convert& convert) {
  ConvertedBatch<T> batch;
  batch.items.reserve(from.size());
  batch.indexes.reserve(from.size());
  for (int i = 0; i < from.size(); ++i) {
    const uint32_t index = first_index + static_cast<uint32_t>(i);
    absl::StatusOr<T> item = convert(from[i]);
    if (item.ok()) {
      batch.items.push_back(*std::move(item));
      batch.indexes.push_back(index);
    } else {
      batch.errors.push_back(
          UpdateError{index, from[i].key(), std::string(item.status().message())});
    }
  }
  return batch;
}

}  // namespace

std::string ValueWithoutKind(std::string_view where, std::string_view name) {
  return absl::StrCat(Entry(where, name), kNoKind);
}

absl::StatusOr<Value> ValueFromProto(const v1::Value& value, std::string_view where) {
  Value out;
  if (!ConvertValue(value, &out)) return Invalid(absl::StrCat(AsAbsl(where), kNoKind));
  return out;
}

absl::StatusOr<NamedValues> NamedValuesFromProto(const ProtoValueMap& values,
                                                 std::string_view where) {
  NamedValues out;
  if (std::optional<std::string_view> bad = ConvertNamedValues(values, &out)) {
    return Invalid(ValueWithoutKind(where, *bad));
  }
  return out;
}

absl::StatusOr<Event> EventFromProto(const v1::Event& event, std::string_view where) {
  Event out{event.type(), event.time(), event.id(), {}};
  if (std::optional<std::string_view> bad =
          ConvertNamedValues(event.properties(), &out.properties)) {
    return Invalid(ValueWithoutKind(absl::StrCat(AsAbsl(where), ".properties"), *bad));
  }
  return out;
}

absl::StatusOr<ProfileUpdate> UpdateFromProto(const v1::ProfileUpdate& update) {
  ProfileUpdate out;
  out.key = update.key();
  out.del = update.delete_();
  // A delete ignores the rest of the update (SPEC §2), kinds of its values included.
  if (out.del) return out;
  absl::StatusOr<NamedValues> set = NamedValuesFromProto(update.set(), "set");
  if (!set.ok()) return set.status();
  out.set = *std::move(set);
  out.unset.assign(update.unset().begin(), update.unset().end());
  absl::StatusOr<NamedValues> increment = NamedValuesFromProto(update.increment(), "increment");
  if (!increment.ok()) return increment.status();
  out.increment = *std::move(increment);
  absl::StatusOr<std::vector<Event>> events = EventsFromProto(update.events());
  if (!events.ok()) return events.status();
  out.events = *std::move(events);
  return out;
}

absl::StatusOr<ProfileData> ProfileFromProto(const v1::Profile& profile) {
  ProfileData out;
  out.key = profile.key();
  absl::StatusOr<NamedValues> attributes = NamedValuesFromProto(profile.attributes(), "attributes");
  if (!attributes.ok()) return attributes.status();
  out.attributes = *std::move(attributes);
  absl::StatusOr<std::vector<Event>> events = EventsFromProto(profile.events());
  if (!events.ok()) return events.status();
  out.events = *std::move(events);
  return out;
}

SegmentSpec SegmentSpecFromProto(const v1::Segment& segment) {
  return SegmentSpec{segment.id(), segment.rule(), segment.description()};
}

ConvertedBatch<ProfileUpdate> UpdatesFromProto(
    const google::protobuf::RepeatedPtrField<v1::ProfileUpdate>& updates) {
  return ConvertEach<ProfileUpdate>(updates, 0, UpdateFromProto);
}

ConvertedBatch<ProfileData> ProfilesFromProto(
    const google::protobuf::RepeatedPtrField<v1::Profile>& profiles, uint32_t first_index) {
  return ConvertEach<ProfileData>(profiles, first_index, ProfileFromProto);
}

std::vector<UpdateError> MergeUpdateErrors(std::span<const uint32_t> indexes,
                                           std::span<const UpdateError> converted_errors,
                                           std::vector<UpdateError> engine_errors) {
  for (UpdateError& e : engine_errors) {
    assert(e.index < indexes.size());
    e.index = indexes[e.index];
  }
  engine_errors.insert(engine_errors.end(), converted_errors.begin(), converted_errors.end());
  std::stable_sort(engine_errors.begin(), engine_errors.end(),
                   [](const UpdateError& a, const UpdateError& b) { return a.index < b.index; });
  return engine_errors;
}

void ToProto(const Value& value, v1::Value* out) {
  switch (value.kind()) {
    case ValueKind::kString:
      out->set_string_value(value.string_value());
      return;
    case ValueKind::kInt:
      out->set_int_value(value.int_value());
      return;
    case ValueKind::kFloat:
      out->set_float_value(value.float_value());
      return;
    case ValueKind::kBool:
      out->set_bool_value(value.bool_value());
      return;
    case ValueKind::kTime:
      out->set_time_value(value.time_value());
      return;
    case ValueKind::kList: {
      auto* values = out->mutable_list_value()->mutable_values();
      values->Clear();
      values->Reserve(static_cast<int>(value.list_value().size()));
      for (const std::string& item : value.list_value()) values->Add()->assign(item);
      return;
    }
  }
}

void ToProto(const Event& event, v1::Event* out) {
  out->set_type(event.type);
  out->set_time(event.time);
  out->set_id(event.id);
  NamedValuesToProto(event.properties, out->mutable_properties());
}

void ToProto(const ProfileUpdate& update, v1::ProfileUpdate* out) {
  out->set_key(update.key);
  NamedValuesToProto(update.set, out->mutable_set());
  out->mutable_unset()->Assign(update.unset.begin(), update.unset.end());
  NamedValuesToProto(update.increment, out->mutable_increment());
  out->clear_events();
  for (const Event& e : update.events) ToProto(e, out->add_events());
  out->set_delete_(update.del);
}

void ToProto(const ProfileData& profile, v1::Profile* out) {
  out->set_key(profile.key);
  NamedValuesToProto(profile.attributes, out->mutable_attributes());
  out->clear_events();
  out->mutable_events()->Reserve(static_cast<int>(profile.events.size()));
  for (const Event& e : profile.events) ToProto(e, out->add_events());
  out->mutable_segments()->Assign(profile.segments.begin(), profile.segments.end());
}

v1::ChangeKind ToProto(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::kEnter:
      return v1::CHANGE_KIND_ENTER;
    case ChangeKind::kExit:
      return v1::CHANGE_KIND_EXIT;
  }
  return v1::CHANGE_KIND_UNSPECIFIED;
}

v1::Cause ToProto(Cause cause) {
  switch (cause) {
    case Cause::kUpdate:
      return v1::CAUSE_UPDATE;
    case Cause::kTime:
      return v1::CAUSE_TIME;
    case Cause::kSegmentPut:
      return v1::CAUSE_SEGMENT_PUT;
    case Cause::kSegmentDelete:
      return v1::CAUSE_SEGMENT_DELETE;
    case Cause::kReplay:
      return v1::CAUSE_REPLAY;
    case Cause::kProfileDelete:
      return v1::CAUSE_PROFILE_DELETE;
    case Cause::kSnapshot:
      return v1::CAUSE_SNAPSHOT;
  }
  return v1::CAUSE_UNSPECIFIED;
}

void ToProto(const SegmentInfo& segment, v1::Segment* out) {
  out->set_id(segment.id);
  out->set_rule(segment.rule);
  out->set_description(segment.description);
  out->set_member_count(segment.member_count);
  out->set_updated_at(segment.updated_at);
}

void ToProto(const PutSegmentResult& result, v1::PutSegmentResponse* out) {
  ToProto(result.segment, out->mutable_segment());
  out->set_entered(result.entered);
  out->set_exited(result.exited);
}

void ToProto(const UpdateError& error, v1::UpdateError* out) {
  out->set_index(error.index);
  // Both may echo a client's bytes that the engine rejected for not being UTF-8 (only
  // the engine checks strings of Replay and Stream; see wire_decode.h).
  out->set_key(ToValidUtf8(error.key));
  out->set_message(ToValidUtf8(error.message));
}

void ToProto(uint64_t seq, const BatchResult& result, v1::Ack* out) {
  out->set_seq(seq);
  out->set_applied(result.applied);
  ErrorsToProto(result.errors, out->mutable_errors());
}

void ToProto(const ReplayResult& result, v1::ReplaySummary* out) {
  out->set_profiles(result.profiles);
  out->set_events(result.events);
  ErrorsToProto(result.errors, out->mutable_errors());
}

void ToProto(const CountResult& result, v1::CountResponse* out) {
  out->set_matched(result.matched);
  out->set_total(result.total);
}

void ToProto(const FunnelResult& result, v1::FunnelResponse* out) {
  out->mutable_counts()->Assign(result.counts.begin(), result.counts.end());
  out->set_total(result.total);
}

void ToProto(const ExplainResult& result, v1::ExplainResponse* out) {
  out->set_matched(result.matched);
  out->clear_terms();
  out->mutable_terms()->Reserve(static_cast<int>(result.terms.size()));
  for (const ExplainTerm& term : result.terms) {
    v1::ExplainTerm* t = out->add_terms();
    t->set_text(term.text);
    t->set_value(term.value);
    t->set_depth(term.depth);
  }
}

void ToProto(const EngineStats& stats, v1::Stats* out) {
  out->set_profiles(stats.profiles);
  out->set_events(stats.events);
  out->set_segments(stats.segments);
  out->set_updates_applied(stats.updates_applied);
  out->set_changes_emitted(stats.changes_emitted);
  out->set_memory_bytes(stats.memory_bytes);
  out->set_now(stats.now);
  out->set_incarnation(stats.incarnation);
}

void ToProto(const Diagnostic& diagnostic, v1::Diagnostic* out) {
  out->set_line(diagnostic.pos.line);
  out->set_column(diagnostic.pos.column);
  out->set_message(diagnostic.message);
}

void ToProto(std::span<const Diagnostic> diagnostics, v1::ValidateRuleResponse* out) {
  out->set_ok(diagnostics.empty());
  out->clear_diagnostics();
  for (const Diagnostic& d : diagnostics) ToProto(d, out->add_diagnostics());
}

std::string CursorToBytes(const Cursor& cursor) { return EncodeCursor(cursor); }

absl::StatusOr<Cursor> CursorFromBytes(std::string_view bytes) { return DecodeCursor(bytes); }

grpc::Status ToGrpcStatus(const absl::Status& status) {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return grpc::Status::OK;
    case absl::StatusCode::kCancelled:
      code = grpc::StatusCode::CANCELLED;
      break;
    case absl::StatusCode::kUnknown:
      code = grpc::StatusCode::UNKNOWN;
      break;
    case absl::StatusCode::kInvalidArgument:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case absl::StatusCode::kDeadlineExceeded:
      code = grpc::StatusCode::DEADLINE_EXCEEDED;
      break;
    case absl::StatusCode::kNotFound:
      code = grpc::StatusCode::NOT_FOUND;
      break;
    case absl::StatusCode::kAlreadyExists:
      code = grpc::StatusCode::ALREADY_EXISTS;
      break;
    case absl::StatusCode::kPermissionDenied:
      code = grpc::StatusCode::PERMISSION_DENIED;
      break;
    case absl::StatusCode::kResourceExhausted:
      code = grpc::StatusCode::RESOURCE_EXHAUSTED;
      break;
    case absl::StatusCode::kFailedPrecondition:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case absl::StatusCode::kAborted:
      code = grpc::StatusCode::ABORTED;
      break;
    case absl::StatusCode::kOutOfRange:
      code = grpc::StatusCode::OUT_OF_RANGE;
      break;
    case absl::StatusCode::kUnimplemented:
      code = grpc::StatusCode::UNIMPLEMENTED;
      break;
    case absl::StatusCode::kInternal:
      code = grpc::StatusCode::INTERNAL;
      break;
    case absl::StatusCode::kUnavailable:
      code = grpc::StatusCode::UNAVAILABLE;
      break;
    case absl::StatusCode::kDataLoss:
      code = grpc::StatusCode::DATA_LOSS;
      break;
    case absl::StatusCode::kUnauthenticated:
      code = grpc::StatusCode::UNAUTHENTICATED;
      break;
    default:  // codes added to Abseil after this was written
      break;
  }
  return grpc::Status(code, std::string(status.message()));
}

}  // namespace segd::server
