#pragma once

#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string_view>
#include <vector>

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

// Where a RequestArena gets its blocks when the arenas of a call's messages follow one
// another: a block given back is kept, and the next arena gets it again. Arenas of
// similar requests ask for the same sequence of sizes, so after the first message a
// call's arenas live in memory already touched; from fresh blocks, a 1,000-profile Replay
// message had malloc map (and fault in, and unmap after) ~3 MB for every message.
//
// Rewind before each new arena; blocks stay allocated until the RecycledBlocks is
// destroyed. Not thread-safe: one arena at a time.
class RecycledBlocks final : public std::pmr::memory_resource {
 public:
  RecycledBlocks() = default;
  RecycledBlocks(const RecycledBlocks&) = delete;
  RecycledBlocks& operator=(const RecycledBlocks&) = delete;
  ~RecycledBlocks() override;

  // The next allocation gets the first block again. REQUIRES: no arena uses the blocks.
  void Rewind() { next_ = 0; }
  // What the blocks kept take.
  size_t bytes() const {
    size_t total = 0;
    for (const Block& b : blocks_) total += b.size;
    return total;
  }

 private:
  struct Block {
    void* data;
    size_t size;
    size_t alignment;
  };

  void* do_allocate(size_t bytes, size_t alignment) override;
  void do_deallocate(void* /*p*/, size_t /*bytes*/, size_t /*alignment*/) override {}
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
  static Block New(size_t bytes, size_t alignment);
  static void Free(const Block& b);

  std::vector<Block> blocks_;
  size_t next_ = 0;  // blocks_[next_] is what the next allocation gets, if large enough
};

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

// A serialized v1.UpdateBatch; request indexes are positions in its `updates`. The
// arena's blocks come from `blocks`, which must outlive it.
absl::StatusOr<DecodedUpdateBatch> DecodeUpdateBatch(
    std::string_view bytes, std::pmr::memory_resource* blocks = std::pmr::new_delete_resource());

// A serialized v1.ReplayRequest; request indexes count from `first_index`. The arena's
// blocks come from `blocks`, which must outlive it.
absl::StatusOr<DecodedReplayRequest> DecodeReplayRequest(
    std::string_view bytes, uint32_t first_index,
    std::pmr::memory_resource* blocks = std::pmr::new_delete_resource());

}  // namespace segd::server
