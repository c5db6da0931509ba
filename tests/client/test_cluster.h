#pragma once

// Three in-process segd servers on a manual clock behind one ClusterClient, with direct
// stubs to each shard to see where things landed: what the client tests drive.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "client/cluster_client.h"
#include "server/server.h"
#include "tests/server/server_fixture.h"

namespace segd::client::testing {

using server::Server;
using server::ServerOptions;
using server::testing::kHour;
using server::testing::kT0;
using server::testing::TestOptions;

// How long a test waits for something that should happen promptly before failing.
inline constexpr absl::Duration kPatience = absl::Seconds(20);

inline ClusterOptions FastOptions() {
  ClusterOptions o;
  o.rpc_timeout = absl::Seconds(10);
  o.reconnect_min_backoff = absl::Milliseconds(10);
  o.reconnect_max_backoff = absl::Milliseconds(100);
  return o;
}

inline std::unique_ptr<Server> StartServer(ServerOptions options, int port = 0) {
  options.listen = "127.0.0.1:" + std::to_string(port);
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
  REQUIRE(server.ok());
  return *std::move(server);
}

// The cluster: servers[s] listens on addresses[s], shard s of `client`.
class TestCluster {
 public:
  explicit TestCluster(ServerOptions options = TestOptions(),
                       ClusterOptions client_options = FastOptions())
      : server_options(options) {
    for (int s = 0; s < 3; ++s) {
      servers.push_back(StartServer(options));
      addresses.push_back("127.0.0.1:" + std::to_string(servers.back()->port()));
    }
    absl::StatusOr<std::unique_ptr<ClusterClient>> c =
        ClusterClient::Create(addresses, client_options);
    REQUIRE(c.ok());
    client = *std::move(c);
    for (const std::string& address : addresses) {
      auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
      query.push_back(v1::Query::NewStub(channel));
      segments.push_back(v1::Segments::NewStub(channel));
    }
  }

  int ShardOf(const std::string& key) const { return client->ring().ShardOf(key); }

  // Stops shard s, then starts a new (empty) server on its port.
  void Stop(int s) { servers[s]->Shutdown(absl::Seconds(5)); }
  void Restart(int s) {
    const int port = servers[s]->port();
    servers[s].reset();
    servers[s] = StartServer(server_options, port);
  }

  // Whether shard s holds the profile, asked directly.
  grpc::StatusCode ProfileOn(int s, const std::string& key) {
    grpc::ClientContext context;
    v1::GetProfileRequest request;
    request.set_key(key);
    v1::Profile profile;
    return query[s]->GetProfile(&context, request, &profile).error_code();
  }

  // `count` keys "<prefix>N" that the ring puts on shard s.
  std::vector<std::string> KeysOn(int s, int count, const std::string& prefix = "k") const {
    std::vector<std::string> keys;
    for (int i = 0; static_cast<int>(keys.size()) < count; ++i) {
      std::string key = prefix + std::to_string(i);
      if (ShardOf(key) == s) keys.push_back(std::move(key));
    }
    return keys;
  }

  ServerOptions server_options;
  std::vector<std::unique_ptr<Server>> servers;
  std::vector<std::string> addresses;
  std::unique_ptr<ClusterClient> client;
  std::vector<std::unique_ptr<v1::Query::Stub>> query;
  std::vector<std::unique_ptr<v1::Segments::Stub>> segments;
};

inline v1::ProfileUpdate SetInt(std::string key, std::string name, int64_t value) {
  v1::ProfileUpdate u;
  u.set_key(std::move(key));
  (*u.mutable_set())[std::move(name)].set_int_value(value);
  return u;
}

// An update every server rejects: a Value with no kind (SPEC §2).
inline v1::ProfileUpdate Invalid(std::string key) {
  v1::ProfileUpdate u;
  u.set_key(std::move(key));
  (*u.mutable_set())["x"];
  return u;
}

inline v1::UpdateBatch Batch(uint64_t seq, std::vector<v1::ProfileUpdate> updates) {
  v1::UpdateBatch b;
  b.set_seq(seq);
  for (v1::ProfileUpdate& u : updates) *b.add_updates() = std::move(u);
  return b;
}

// Sends one batch and waits for its merged Ack.
inline v1::Ack Ingest(ClusterClient& client, std::vector<v1::ProfileUpdate> updates,
                      uint64_t seq = 1) {
  std::unique_ptr<Producer> producer = client.NewProducer();
  absl::StatusOr<v1::Ack> ack = producer->Send(Batch(seq, std::move(updates))).get();
  INFO(ack.status().ToString());
  REQUIRE(ack.ok());
  REQUIRE(ack->errors().empty());
  REQUIRE(producer->Close().ok());
  return *ack;
}

inline void PutSegment(ClusterClient& client, const std::string& id, const std::string& rule) {
  v1::PutSegmentRequest request;
  request.mutable_segment()->set_id(id);
  request.mutable_segment()->set_rule(rule);
  absl::StatusOr<v1::PutSegmentResponse> r = client.PutSegment(request);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
}

inline std::vector<std::string> Keys(const std::string& prefix, int n) {
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) keys.push_back(prefix + std::to_string(i));
  return keys;
}

}  // namespace segd::client::testing
