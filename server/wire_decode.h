#pragma once

#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/profile_ref.h"
#include "server/convert.h"

// The two bulk requests of Ingest — UpdateBatch (Stream) and ReplayRequest (Replay) —
// decoded from their wire bytes straight into the engine's types, without building
// protobuf messages first. For a replayed profile that parse (maps into hash tables, every
// event a message) and the copy out of it cost more than the engine's replace itself.
// Nothing is even copied: a replayed profile comes out as a ProfileRef and an update as
// an UpdateRef, their strings views of the request's bytes and their lists of entries
// and events in an arena per request (a few blocks, where owned profiles took ~40
// allocations each, and an owned update 2-4).
//
// The result is exactly what parsing with the generated code and then UpdatesFromProto /
// ProfilesFromProto gives (tests/server/wire_decode_test.cc checks it on random messages,
// through ToProfileUpdate and ToProfileData):
// unknown fields and fields of an unexpected wire type are skipped, the last value of a
// singular field wins, a map keeps the last entry of a key and comes out sorted by name, a
// message field given twice is merged, and a value without a kind rejects its update or
// profile with the same message. Two differences, both in what is rejected: bytes that
// are not a well-formed message fail the whole request with INVALID_ARGUMENT naming the
// byte offset (protobuf would fail the call without saying where), and strings are not
// checked for UTF-8 here but by the engine, which rejects just the profile or update that
// holds a bad one, naming the field.
namespace segd::server {

// What a decoded request's lists live in: a bump allocator, its blocks growing
// geometrically and freed all at once with it (a Keep was ~70 instructions through
// protobuf's thread-safe Arena, which cached the thread's block in TLS).
using RequestArena = std::pmr::monotonic_buffer_resource;

struct DecodedUpdateBatch {
  uint64_t seq = 0;
  // Borrowed, as a replay's profiles are.
  ConvertedBatch<UpdateRef> updates;
  std::unique_ptr<RequestArena> arena;
};

struct DecodedReplayRequest {
  bool quiet = false;
  uint32_t profiles = 0;  // entries of `profiles`, converted or not
  // Borrowed: strings are views of the request's bytes, which must outlive them, and
  // the rest lives in `arena`.
  ConvertedBatch<ProfileRef> converted;
  std::unique_ptr<RequestArena> arena;
};

// A serialized v1.UpdateBatch; request indexes are positions in its `updates`.
absl::StatusOr<DecodedUpdateBatch> DecodeUpdateBatch(std::string_view bytes);

// A serialized v1.ReplayRequest; request indexes count from `first_index`.
absl::StatusOr<DecodedReplayRequest> DecodeReplayRequest(std::string_view bytes,
                                                         uint32_t first_index);

}  // namespace segd::server
