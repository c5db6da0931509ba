#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/change.h"
#include "server/wire_reader.h"

// Protocol-buffer wire format written without message objects, for the messages that
// go out in bulk: segd's change batches (every live batch of every subscription) and
// segload's profiles and update batches. Follows proto/segd/v1/segd.proto; the tests
// check the bytes against the generated code.
namespace segd::server::wire {

size_t VarintSize(uint64_t v);
void AppendVarint(uint64_t v, std::string* out);
void AppendTag(uint32_t field, WireType type, std::string* out);
// Tag, length, bytes.
void AppendBytesField(uint32_t field, std::string_view bytes, std::string* out);
void AppendVarintField(uint32_t field, uint64_t v, std::string* out);

// v1.ChangeBatch, as the generated code serializes it: changes (field 1) one by one,
// then the cursor and snapshot_done (each omitted when empty or false).
void AppendBatchChange(const ChangeView& change, std::string* batch);
void AppendBatchEnd(std::string_view cursor, bool snapshot_done, std::string* batch);

}  // namespace segd::server::wire
