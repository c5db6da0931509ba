#pragma once

#include <cstddef>

#include "absl/time/time.h"

namespace segd::client {

// How a ClusterClient talks to its shards.
struct ClusterOptions {
  // The deadline of each unary call to one shard.
  absl::Duration rpc_timeout = absl::Seconds(30);
  // The deadline of each ListMembers or Export stream from one shard; infinite: none.
  absl::Duration stream_timeout = absl::InfiniteDuration();
  // The largest message sent or received; match the servers' --max-message-bytes.
  int max_message_bytes = 64 << 20;

  // Producer: batches sent and not yet acked, past which Send waits.
  size_t max_pending_batches = 64;

  // Subscription: after a shard's stream breaks, it is reopened after a pause that
  // starts at the minimum and doubles (with ±20% jitter) up to the maximum, back to the
  // minimum once a batch arrives.
  absl::Duration reconnect_min_backoff = absl::Milliseconds(100);
  absl::Duration reconnect_max_backoff = absl::Seconds(5);
  // Subscription: a shard stream that brings nothing for this long — segd sends a
  // heartbeat at least once a second — is taken as broken and reopened; infinite: never.
  absl::Duration idle_timeout = absl::Seconds(10);
};

}  // namespace segd::client
