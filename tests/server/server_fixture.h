#pragma once

// An in-process segd server on a free loopback port, on a manual clock, with a stub for
// every service: what the server tests drive.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "segd/v1/segd.grpc.pb.h"
#include "server/server.h"

namespace segd::server::testing {

inline constexpr int64_t kT0 = 1'700'000'000'000;
inline constexpr int64_t kHour = 3'600'000;
inline constexpr int64_t kDay = 24 * kHour;

inline ServerOptions TestOptions() {
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.shards = 2;
  o.manual_clock = true;
  o.start_time_ms = kT0;
  return o;
}

class ServerFixture {
 public:
  explicit ServerFixture(ServerOptions options = TestOptions()) {
    absl::StatusOr<std::unique_ptr<Server>> s = Server::Start(options);
    REQUIRE(s.ok());
    server = std::move(*s);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(options.max_message_bytes);
    args.SetMaxSendMessageSize(options.max_message_bytes);
    channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(server->port()),
                                        grpc::InsecureChannelCredentials(), args);
    ingest = v1::Ingest::NewStub(channel);
    segments = v1::Segments::NewStub(channel);
    changes = v1::Changes::NewStub(channel);
    query = v1::Query::NewStub(channel);
    admin = v1::Admin::NewStub(channel);
  }

  std::unique_ptr<Server> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Ingest::Stub> ingest;
  std::unique_ptr<v1::Segments::Stub> segments;
  std::unique_ptr<v1::Changes::Stub> changes;
  std::unique_ptr<v1::Query::Stub> query;
  std::unique_ptr<v1::Admin::Stub> admin;
};

// A second gRPC server with just one service over `f`'s engine, whose environment is
// draining: every call to it must answer UNAVAILABLE.
template <typename Service>
class DrainingServer {
 public:
  explicit DrainingServer(ServerFixture& f)
      : env(f.server->engine(), true, 64 << 20), service(env) {
    env.draining = true;
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                  grpc::InsecureChannelCredentials());
  }
  ~DrainingServer() { server->Shutdown(); }

  ServiceEnv env;
  Service service;
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<grpc::Channel> channel;
};

}  // namespace segd::server::testing
