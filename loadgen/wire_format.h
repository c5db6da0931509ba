#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/profile_update.h"
#include "core/value.h"
#include "server/wire_reader.h"
#include "server/wire_writer.h"

// Protocol-buffer wire format for the few segd.v1 messages segload writes and reads in
// bulk, without building message objects: preloaded profiles are encoded straight from the
// engine's types (several times faster than ToProto + serialization, which would otherwise
// cost more client CPU than the server spends replaying them), update batches are framed
// around pre-serialized updates, and change batches are scanned for the two fields
// segload needs. Everything here follows proto/segd/v1/segd.proto; the tests check the
// output against the generated code.
namespace segd::load::wire {

using server::wire::Reader;
using server::wire::WireType;

// Field numbers of segd.v1 used here.
inline constexpr uint32_t kReplayRequestProfiles = 1;
inline constexpr uint32_t kReplayRequestQuiet = 2;
inline constexpr uint32_t kUpdateBatchSeq = 1;
inline constexpr uint32_t kUpdateBatchUpdates = 2;
inline constexpr uint32_t kProfileUpdateKey = 1;
inline constexpr uint32_t kChangeBatchChanges = 1;
inline constexpr uint32_t kChangeKey = 1;
inline constexpr uint32_t kChangeCause = 5;
inline constexpr uint64_t kCauseUpdate = 1;  // segd.v1.Cause.CAUSE_UPDATE

using server::wire::AppendBytesField;
using server::wire::AppendTag;
using server::wire::AppendVarint;
using server::wire::AppendVarintField;
using server::wire::VarintSize;

// The encoded size of a v1.Profile built from `profile` (key, attributes, events; the
// output-only `segments` are not written), and the encoding itself, appended to `out`.
size_t ProfileSize(const ProfileData& profile);
void AppendProfile(const ProfileData& profile, std::string* out);
// `profile` as one entry of ReplayRequest.profiles (tag, length, message).
void AppendReplayProfile(const ProfileData& profile, std::string* out);

// One entry of UpdateBatch.updates whose ProfileUpdate is `key` followed by `body`, a
// serialized ProfileUpdate without its key (fields may come in any order on the wire, and
// a field given once stays as given).
void AppendKeyedUpdate(std::string_view key, std::string_view body, std::string* out);

// Calls on_change(key, cause) for every Change of a serialized ChangeBatch, in order; false
// if the bytes do not parse.
template <typename OnChange>
bool ScanChangeBatch(std::string_view bytes, OnChange&& on_change) {
  Reader batch(bytes);
  while (!batch.done()) {
    uint32_t field;
    WireType type;
    if (!batch.ReadTag(&field, &type)) return false;
    if (field != kChangeBatchChanges || type != WireType::kLengthDelimited) {
      if (!batch.Skip(field, type)) return false;
      continue;
    }
    std::string_view change_bytes;
    if (!batch.ReadLengthDelimited(&change_bytes)) return false;
    Reader change(change_bytes);
    std::string_view key;
    uint64_t cause = 0;
    while (!change.done()) {
      if (!change.ReadTag(&field, &type)) return false;
      if (field == kChangeKey && type == WireType::kLengthDelimited) {
        if (!change.ReadLengthDelimited(&key)) return false;
      } else if (field == kChangeCause && type == WireType::kVarint) {
        if (!change.ReadVarint(&cause)) return false;
      } else if (!change.Skip(field, type)) {
        return false;
      }
    }
    on_change(key, cause);
  }
  return true;
}

}  // namespace segd::load::wire
