#include "server/ingest_service.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/change.h"
#include "core/engine.h"
#include "server/convert.h"
#include "tests/server/server_fixture.h"

namespace segd::server {
namespace {

using testing::kDay;
using testing::kHour;
using testing::kT0;
using testing::ServerFixture;
using testing::TestOptions;

v1::Value IntValue(int64_t i) {
  v1::Value v;
  v.set_int_value(i);
  return v;
}

v1::Value FloatValue(double f) {
  v1::Value v;
  v.set_float_value(f);
  return v;
}

v1::Value StringValue(std::string s) {
  v1::Value v;
  v.set_string_value(std::move(s));
  return v;
}

v1::ProfileUpdate Set(std::string key, std::string name, v1::Value value) {
  v1::ProfileUpdate u;
  u.set_key(std::move(key));
  (*u.mutable_set())[std::move(name)] = std::move(value);
  return u;
}

v1::ProfileUpdate Increment(std::string key, std::string name, v1::Value value) {
  v1::ProfileUpdate u;
  u.set_key(std::move(key));
  (*u.mutable_increment())[std::move(name)] = std::move(value);
  return u;
}

v1::ProfileUpdate WithEvent(std::string key, std::string type, int64_t time) {
  v1::ProfileUpdate u;
  u.set_key(std::move(key));
  v1::Event* e = u.add_events();
  e->set_type(std::move(type));
  e->set_time(time);
  return u;
}

v1::UpdateBatch Batch(uint64_t seq, std::vector<v1::ProfileUpdate> updates) {
  v1::UpdateBatch b;
  b.set_seq(seq);
  for (v1::ProfileUpdate& u : updates) *b.add_updates() = std::move(u);
  return b;
}

struct StreamResult {
  bool all_written = false;
  std::vector<v1::Ack> acks;  // in arrival order
  grpc::Status status;
};

// Sends `batches` on one Ingest.Stream (from a second thread, so that Acks are read
// while batches are still being written), half-closes, and collects every Ack.
StreamResult RunStream(v1::Ingest::Stub& stub, const std::vector<v1::UpdateBatch>& batches) {
  grpc::ClientContext ctx;
  auto stream = stub.Stream(&ctx);
  StreamResult result;
  std::thread writer([&] {
    bool ok = true;
    for (const v1::UpdateBatch& b : batches) ok = ok && stream->Write(b);
    result.all_written = ok && stream->WritesDone();
  });
  v1::Ack ack;
  while (stream->Read(&ack)) result.acks.push_back(ack);
  writer.join();
  result.status = stream->Finish();
  return result;
}

std::map<uint64_t, v1::Ack> BySeq(const std::vector<v1::Ack>& acks) {
  std::map<uint64_t, v1::Ack> out;
  for (const v1::Ack& a : acks) out[a.seq()] = a;
  return out;
}

std::optional<Value> Attribute(const ProfileData& p, std::string_view name) {
  for (const auto& [n, v] : p.attributes) {
    if (n == name) return v;
  }
  return std::nullopt;
}

std::vector<Change> ChangesSince(Engine& engine, Cursor cursor) {
  std::vector<Change> out;
  REQUIRE(engine.ReadChanges(&cursor, 100000, nullptr, &out).ok());
  return out;
}

TEST_CASE("Stream sends one Ack per batch, by seq, with the applied count", "[server][ingest]") {
  ServerFixture f;
  std::vector<v1::UpdateBatch> batches;
  for (uint64_t seq = 100; seq < 140; ++seq) {
    std::vector<v1::ProfileUpdate> updates;
    for (int i = 0; i < static_cast<int>(seq % 7) + 1; ++i) {
      updates.push_back(Set("k" + std::to_string(seq) + "-" + std::to_string(i), "n", IntValue(i)));
    }
    batches.push_back(Batch(seq, std::move(updates)));
  }
  batches.push_back(Batch(140, {}));  // an empty batch is acked too

  StreamResult r = RunStream(*f.ingest, batches);
  CHECK(r.all_written);
  CHECK(r.status.ok());
  REQUIRE(r.acks.size() == batches.size());
  std::map<uint64_t, v1::Ack> acks = BySeq(r.acks);
  REQUIRE(acks.size() == batches.size());
  uint64_t total = 0;
  for (const v1::UpdateBatch& b : batches) {
    INFO("seq " << b.seq());
    REQUIRE(acks.count(b.seq()) == 1);
    CHECK(acks[b.seq()].applied() == static_cast<uint32_t>(b.updates_size()));
    CHECK(acks[b.seq()].errors().empty());
    total += b.updates_size();
  }
  EngineStats stats = f.server->engine().Stats();
  CHECK(stats.profiles == total);
  CHECK(stats.updates_applied == total);
  absl::StatusOr<ProfileData> p = f.server->engine().GetProfile("k104-6");
  REQUIRE(p.ok());
  CHECK(Attribute(*p, "n") == Value::Int(6));
}

TEST_CASE("Stream reports each rejected update by index, key and message", "[server][ingest]") {
  ServerFixture f;
  std::vector<v1::ProfileUpdate> updates;
  updates.push_back(Set("a", "name", StringValue("bob")));           // 0
  updates.push_back(Set("", "x", IntValue(1)));                      // 1
  updates.push_back(Set("nan", "score", FloatValue(std::nan(""))));  // 2
  updates.push_back(Set("nokind", "age", v1::Value()));              // 3
  updates.push_back(WithEvent("future", "view", kT0 + kDay + 1));    // 4
  updates.push_back(Increment("a", "name", IntValue(1)));            // 5
  updates.push_back(Increment("b", "n", StringValue("x")));          // 6
  updates.push_back(Set("b", "x", IntValue(7)));                     // 7
  updates.push_back(WithEvent("ontime", "view", kT0 + kDay));        // 8
  // A kind-less value in an event property, behind a valid set: the whole update goes.
  v1::ProfileUpdate mixed = Set("mixed", "ok", IntValue(1));
  (*mixed.add_events()->mutable_properties())["p"] = v1::Value();
  mixed.mutable_events(0)->set_type("view");
  updates.push_back(std::move(mixed));  // 9

  StreamResult r = RunStream(*f.ingest, {Batch(5, std::move(updates))});
  REQUIRE(r.status.ok());
  REQUIRE(r.acks.size() == 1);
  const v1::Ack& ack = r.acks[0];
  CHECK(ack.seq() == 5);
  CHECK(ack.applied() == 3);
  struct Want {
    uint32_t index;
    std::string key;
    std::string message;
  };
  const std::vector<Want> want = {
      {1, "", "key: must be 1-256 bytes, got 0"},
      {2, "nan", "set[\"score\"]: float is NaN"},
      {3, "nokind", "set[\"age\"]: value has no kind"},
      {4, "future", "events[0].time: 86400001 ms ahead of now, more than max-future 86400000"},
      {5, "a", "increment[\"name\"]: attribute is a string, not a number"},
      {6, "b", "increment[\"n\"]: must be an int or float, got string"},
      {9, "mixed", "events[0].properties[\"p\"]: value has no kind"},
  };
  REQUIRE(ack.errors_size() == static_cast<int>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("error " << i);
    CHECK(ack.errors(i).index() == want[i].index);
    CHECK(ack.errors(i).key() == want[i].key);
    CHECK(ack.errors(i).message() == want[i].message);
  }

  Engine& engine = f.server->engine();
  absl::StatusOr<ProfileData> a = engine.GetProfile("a");
  REQUIRE(a.ok());
  CHECK(Attribute(*a, "name") == Value::String("bob"));
  absl::StatusOr<ProfileData> b = engine.GetProfile("b");
  REQUIRE(b.ok());
  CHECK(Attribute(*b, "x") == Value::Int(7));
  CHECK(!Attribute(*b, "n").has_value());
  CHECK(engine.GetProfile("ontime").ok());
  for (const char* rejected : {"nan", "nokind", "future", "mixed"}) {
    INFO(rejected);
    CHECK(engine.GetProfile(rejected).status().code() == absl::StatusCode::kNotFound);
  }
}

TEST_CASE("Stream applies the updates of one key in stream order across batches",
          "[server][ingest]") {
  ServerFixture f;
  Engine& engine = f.server->engine();
  REQUIRE(engine.PutSegment({"high", "v >= 190", ""}, false).ok());
  const Cursor start = engine.CurrentCursor();
  // More batches than may be in flight at once, each touching the same keys.
  std::vector<v1::UpdateBatch> batches;
  for (int i = 0; i < 200; ++i) {
    batches.push_back(Batch(
        i, {Set("same", "v", IntValue(i)), Increment("same", "count", IntValue(1)),
            Set("other", "v", IntValue(1000 + i)), WithEvent("same", "tick", kT0 - 200 + i)}));
  }
  StreamResult r = RunStream(*f.ingest, batches);
  REQUIRE(r.status.ok());
  REQUIRE(r.acks.size() == 200);
  for (const auto& [seq, ack] : BySeq(r.acks)) CHECK(ack.applied() == 4);

  absl::StatusOr<ProfileData> same = engine.GetProfile("same");
  REQUIRE(same.ok());
  CHECK(Attribute(*same, "v") == Value::Int(199));
  CHECK(Attribute(*same, "count") == Value::Int(200));
  REQUIRE(same->events.size() == 200);
  CHECK(same->events.back().time == kT0 - 1);
  absl::StatusOr<ProfileData> other = engine.GetProfile("other");
  REQUIRE(other.ok());
  CHECK(Attribute(*other, "v") == Value::Int(1199));
  // "same" entered at v = 190 and never left; had the updates applied out of order it
  // would have left and entered again.
  std::vector<Change> changes;
  for (const Change& c : ChangesSince(engine, start)) {
    if (c.key == "same") changes.push_back(c);
  }
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].kind == ChangeKind::kEnter);
  CHECK(changes[0].cause == Cause::kUpdate);
}

TEST_CASE("Stream applies everything from concurrent producers", "[server][ingest]") {
  ServerFixture f;
  constexpr int kProducers = 4;
  constexpr int kBatches = 40;
  constexpr int kPerBatch = 50;
  constexpr int kKeys = 100;  // per producer; every key is updated many times
  std::vector<StreamResult> results(kProducers);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::vector<v1::UpdateBatch> batches;
      int n = 0;
      for (int b = 0; b < kBatches; ++b) {
        std::vector<v1::ProfileUpdate> updates;
        for (int i = 0; i < kPerBatch; ++i, ++n) {
          const std::string key = "p" + std::to_string(p) + "-" + std::to_string(n % kKeys);
          v1::ProfileUpdate u = Increment(key, "count", IntValue(1));
          (*u.mutable_set())["last"] = IntValue(n);
          updates.push_back(std::move(u));
        }
        batches.push_back(Batch(b, std::move(updates)));
      }
      results[p] = RunStream(*f.ingest, batches);  // recorded; checked below
    });
  }
  for (std::thread& t : producers) t.join();

  for (int p = 0; p < kProducers; ++p) {
    INFO("producer " << p);
    CHECK(results[p].status.ok());
    CHECK(results[p].all_written);
    std::map<uint64_t, v1::Ack> acks = BySeq(results[p].acks);
    CHECK(results[p].acks.size() == kBatches);
    CHECK(acks.size() == kBatches);
    for (const auto& [seq, ack] : acks) {
      CHECK(ack.applied() == kPerBatch);
      CHECK(ack.errors().empty());
    }
  }
  Engine& engine = f.server->engine();
  EngineStats stats = engine.Stats();
  CHECK(stats.profiles == kProducers * kKeys);
  CHECK(stats.updates_applied == kProducers * kBatches * kPerBatch);
  const int per_key = kBatches * kPerBatch / kKeys;
  for (int p = 0; p < kProducers; ++p) {
    for (int k = 0; k < kKeys; ++k) {
      absl::StatusOr<ProfileData> profile =
          engine.GetProfile("p" + std::to_string(p) + "-" + std::to_string(k));
      REQUIRE(profile.ok());
      CHECK(Attribute(*profile, "count") == Value::Int(per_key));
      CHECK(Attribute(*profile, "last") == Value::Int(kBatches * kPerBatch - kKeys + k));
    }
  }
}

TEST_CASE("Apply applies one batch and acks it", "[server][ingest]") {
  ServerFixture f;
  v1::UpdateBatch batch = Batch(
      42, {Set("x", "n", IntValue(1)), Set("x", "bad", v1::Value()), Set("y", "n", IntValue(2))});
  v1::Ack ack;
  grpc::ClientContext ctx;
  grpc::Status s = f.ingest->Apply(&ctx, batch, &ack);
  REQUIRE(s.ok());
  CHECK(ack.seq() == 42);
  CHECK(ack.applied() == 2);
  REQUIRE(ack.errors_size() == 1);
  CHECK(ack.errors(0).index() == 1);
  CHECK(ack.errors(0).key() == "x");
  CHECK(ack.errors(0).message() == "set[\"bad\"]: value has no kind");
  absl::StatusOr<ProfileData> x = f.server->engine().GetProfile("x");
  REQUIRE(x.ok());
  CHECK(Attribute(*x, "n") == Value::Int(1));
  CHECK(!Attribute(*x, "bad").has_value());
  CHECK(f.server->engine().GetProfile("y").ok());
}

// ---- Replay ----

v1::Profile MakeProfile(int i) {
  v1::Profile p;
  p.set_key("r" + std::to_string(i));
  (*p.mutable_attributes())["email"] = StringValue("u" + std::to_string(i) + "@example.com");
  (*p.mutable_attributes())["n"] = IntValue(i);
  for (int e = 0; e < i % 4; ++e) {
    v1::Event* ev = p.add_events();
    ev->set_type(e % 2 == 0 ? "view" : "buy");
    ev->set_time(kT0 - (10 - e) * kHour);
    ev->set_id("e" + std::to_string(e));
    (*ev->mutable_properties())["amount"] = IntValue(e * 10);
  }
  return p;
}

struct ReplayOutcome {
  grpc::Status status;
  v1::ReplaySummary summary;
};

ReplayOutcome RunReplay(v1::Ingest::Stub& stub, const std::vector<v1::ReplayRequest>& messages) {
  ReplayOutcome out;
  grpc::ClientContext ctx;
  auto writer = stub.Replay(&ctx, &out.summary);
  for (const v1::ReplayRequest& m : messages) REQUIRE(writer->Write(m));
  REQUIRE(writer->WritesDone());
  out.status = writer->Finish();
  return out;
}

TEST_CASE("Replay creates or replaces profiles and counts errors across the stream",
          "[server][ingest][replay]") {
  const bool quiet = GENERATE(false, true);
  INFO("quiet " << quiet);
  ServerFixture f;
  Engine& engine = f.server->engine();
  REQUIRE(engine.PutSegment({"has_email", "has(email)", ""}, false).ok());
  // "r0" exists before the replay, a member already, with an attribute the replay does
  // not have.
  ProfileUpdate r0;
  r0.key = "r0";
  r0.set = {{"email", Value::String("old@example.com")}, {"old", Value::Int(1)}};
  REQUIRE(engine.Apply(std::vector<ProfileUpdate>{r0}).errors.empty());
  const Cursor start = engine.CurrentCursor();

  // 3 messages of 10, 10 and 5 profiles; two bad ones, at stream indexes 13 and 22.
  std::vector<v1::Profile> sent;
  std::vector<v1::ReplayRequest> messages(3);
  int i = 0;
  for (int m = 0; m < 3; ++m) {
    for (int k = 0; k < (m == 2 ? 5 : 10); ++k, ++i) {
      v1::Profile p = MakeProfile(i);
      if (i == 13) (*p.mutable_attributes())["broken"] = v1::Value();
      if (i == 22) p.set_key("");
      if (i != 13 && i != 22) sent.push_back(p);
      *messages[m].add_profiles() = std::move(p);
    }
  }
  messages[0].set_quiet(quiet);
  messages[1].set_quiet(!quiet);  // ignored: quiet is read from the first message only
  messages[2].set_quiet(!quiet);

  ReplayOutcome r = RunReplay(*f.ingest, messages);
  REQUIRE(r.status.ok());
  CHECK(r.summary.profiles() == 23);
  uint64_t events = 0;
  for (const v1::Profile& p : sent) events += p.events_size();
  CHECK(r.summary.events() == events);
  REQUIRE(r.summary.errors_size() == 2);
  CHECK(r.summary.errors(0).index() == 13);
  CHECK(r.summary.errors(0).key() == "r13");
  CHECK(r.summary.errors(0).message() == "attributes[\"broken\"]: value has no kind");
  CHECK(r.summary.errors(1).index() == 22);
  CHECK(r.summary.errors(1).key() == "");
  CHECK(r.summary.errors(1).message() == "key: must be 1-256 bytes, got 0");

  std::vector<Change> changes = ChangesSince(engine, start);
  if (quiet) {
    CHECK(changes.empty());
  } else {
    // r0 was a member already; the 22 others enter.
    CHECK(changes.size() == 22);
    for (const Change& c : changes) {
      CHECK(c.cause == Cause::kReplay);
      CHECK(c.kind == ChangeKind::kEnter);
      CHECK(c.key != "r0");
    }
  }

  for (const v1::Profile& p : sent) {
    INFO(p.key());
    absl::StatusOr<ProfileData> want = ProfileFromProto(p);
    REQUIRE(want.ok());
    absl::StatusOr<ProfileData> got = engine.GetProfile(p.key());
    REQUIRE(got.ok());
    CHECK(got->attributes == want->attributes);  // r0's "old" is gone: replaced
    CHECK(got->events == want->events);
    CHECK(got->segments == std::vector<std::string>{"has_email"});
  }
  CHECK(engine.GetProfile("r13").status().code() == absl::StatusCode::kNotFound);
  CHECK(engine.Stats().profiles == 23);
}

TEST_CASE("Replay applies messages in stream order: a key replayed again ends as its later profile",
          "[server][ingest][replay]") {
  ServerFixture f;
  // 40 messages in a row, each replacing the same 50 keys with a new "round" attribute:
  // several messages are in the engine at once, and the last one must win everywhere.
  std::vector<v1::ReplayRequest> messages(40);
  for (int m = 0; m < 40; ++m) {
    messages[m].set_quiet(true);
    for (int k = 0; k < 50; ++k) {
      v1::Profile* p = messages[m].add_profiles();
      p->set_key("k" + std::to_string(k));
      (*p->mutable_attributes())["round"].set_int_value(m);
    }
  }
  ReplayOutcome r = RunReplay(*f.ingest, messages);
  REQUIRE(r.status.ok());
  CHECK(r.summary.profiles() == 40 * 50);
  for (int k = 0; k < 50; ++k) {
    absl::StatusOr<ProfileData> got = f.server->engine().GetProfile("k" + std::to_string(k));
    REQUIRE(got.ok());
    REQUIRE(got->attributes.size() == 1);
    CHECK(got->attributes[0].second == Value::Int(39));
  }
}

TEST_CASE("Replay stores every profile as sent while later messages reuse finished ones' memory",
          "[server][ingest][replay]") {
  ServerFixture f;
  // Messages of different sizes (so a reused buffer is sometimes too small, sometimes
  // larger than the message), each of its own keys: a message decoded into memory still
  // in the engine would show up as another message's profiles.
  std::vector<v1::ReplayRequest> messages(30);
  std::vector<v1::Profile> sent;
  int i = 0;
  for (int m = 0; m < 30; ++m) {
    messages[m].set_quiet(true);
    for (int k = 0; k < 5 + (m * 7) % 40; ++k, ++i) {
      sent.push_back(MakeProfile(i));
      *messages[m].add_profiles() = sent.back();
    }
  }
  ReplayOutcome r = RunReplay(*f.ingest, messages);
  REQUIRE(r.status.ok());
  CHECK(r.summary.profiles() == sent.size());
  CHECK(r.summary.errors_size() == 0);
  for (const v1::Profile& p : sent) {
    INFO(p.key());
    absl::StatusOr<ProfileData> want = ProfileFromProto(p);
    REQUIRE(want.ok());
    absl::StatusOr<ProfileData> got = f.server->engine().GetProfile(p.key());
    REQUIRE(got.ok());
    CHECK(got->attributes == want->attributes);
    CHECK(got->events == want->events);
  }
}

TEST_CASE("Replay of an empty stream replays nothing", "[server][ingest][replay]") {
  ServerFixture f;
  ReplayOutcome r = RunReplay(*f.ingest, {});
  REQUIRE(r.status.ok());
  CHECK(r.summary.profiles() == 0);
  CHECK(r.summary.events() == 0);
  CHECK(r.summary.errors().empty());
}

// Raw bytes on the wire, for what no generated client would send: a client-streaming
// call of `method` writing each of `messages` as is, and its single response as bytes.
struct RawOutcome {
  grpc::Status status;
  std::string response;
};

RawOutcome RunRawClientStream(const std::shared_ptr<grpc::Channel>& channel,
                              const std::string& method,
                              const std::vector<std::string>& messages) {
  RawOutcome out;
  const grpc::internal::RpcMethod rpc(method.c_str(), grpc::internal::RpcMethod::CLIENT_STREAMING,
                                      channel);
  grpc::ClientContext ctx;
  grpc::ByteBuffer response;
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
      grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(channel.get(), rpc, &ctx,
                                                                     &response));
  for (const std::string& m : messages) {
    const grpc::Slice slice(m);
    if (!writer->Write(grpc::ByteBuffer(&slice, 1))) break;
  }
  writer->WritesDone();
  out.status = writer->Finish();
  if (out.status.ok()) {
    grpc::Slice slice;
    REQUIRE(response.DumpToSingleSlice(&slice).ok());
    out.response.assign(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return out;
}

// The same for a bidi-streaming call: every response, as bytes.
struct RawStreamOutcome {
  grpc::Status status;
  std::vector<std::string> responses;
};

RawStreamOutcome RunRawBidiStream(const std::shared_ptr<grpc::Channel>& channel,
                                  const std::string& method,
                                  const std::vector<std::string>& messages) {
  RawStreamOutcome out;
  const grpc::internal::RpcMethod rpc(method.c_str(), grpc::internal::RpcMethod::BIDI_STREAMING,
                                      channel);
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel.get(), rpc, &ctx));
  for (const std::string& m : messages) {
    const grpc::Slice slice(m);
    if (!stream->Write(grpc::ByteBuffer(&slice, 1))) break;
  }
  stream->WritesDone();
  grpc::ByteBuffer response;
  while (stream->Read(&response)) {
    grpc::Slice slice;
    REQUIRE(response.DumpToSingleSlice(&slice).ok());
    out.responses.emplace_back(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  out.status = stream->Finish();
  return out;
}

TEST_CASE("Stream acks what came before a message that is not protobuf, then ends",
          "[server][ingest]") {
  ServerFixture f;
  const v1::UpdateBatch good = Batch(1, {Set("a", "n", IntValue(1))});
  const RawStreamOutcome r =
      RunRawBidiStream(f.channel, "/segd.v1.Ingest/Stream",
                       {good.SerializeAsString(), std::string("\x12\x09" "short", 7)});
  CHECK(r.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(r.status.error_message() ==
        "message 2 of the stream: the UpdateBatch message is not valid protobuf wire format "
        "(at byte 2)");
  REQUIRE(r.responses.size() == 1);
  v1::Ack ack;
  REQUIRE(ack.ParseFromString(r.responses[0]));
  CHECK(ack.seq() == 1);
  CHECK(ack.applied() == 1);
  CHECK(f.server->engine().GetProfile("a").ok());
}

TEST_CASE("Stream rejects just the update whose strings are not UTF-8, and says which",
          "[server][ingest]") {
  ServerFixture f;
  const v1::UpdateBatch batch = Batch(
      7, {Set("a\xc3", "n", IntValue(1)), Set("b", "city", StringValue("K\xf8" "benhavn")),
          WithEvent("c", "view\xff", kT0), Set("d", "n", IntValue(4))});
  const RawStreamOutcome r =
      RunRawBidiStream(f.channel, "/segd.v1.Ingest/Stream", {batch.SerializeAsString()});
  REQUIRE(r.status.ok());
  REQUIRE(r.responses.size() == 1);
  v1::Ack ack;
  REQUIRE(ack.ParseFromString(r.responses[0]));  // what it echoes is UTF-8 again
  CHECK(ack.seq() == 7);
  CHECK(ack.applied() == 1);
  REQUIRE(ack.errors_size() == 3);
  CHECK(ack.errors(0).key() == "a\uFFFD");
  CHECK(ack.errors(0).message() == "key: must be valid UTF-8");
  CHECK(ack.errors(1).message() == "set[\"city\"]: string is not valid UTF-8");
  CHECK(ack.errors(2).index() == 2);
  CHECK(ack.errors(2).message() == "events[0].type: must be 1-128 bytes of UTF-8");
  CHECK(f.server->engine().GetProfile("d").ok());
}

TEST_CASE("Replay ends with INVALID_ARGUMENT on a message that is not protobuf",
          "[server][ingest][replay]") {
  ServerFixture f;
  v1::ReplayRequest good;
  *good.add_profiles() = MakeProfile(1);
  const RawOutcome r = RunRawClientStream(f.channel, "/segd.v1.Ingest/Replay",
                                          {good.SerializeAsString(), std::string("\x0a\x05" "ab", 4)});
  CHECK(r.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(r.status.error_message() ==
        "message 2 of the stream: the ReplayRequest message is not valid protobuf wire format "
        "(at byte 2)");
  // The message before it was replayed; the server goes on serving.
  CHECK(f.server->engine().GetProfile("r1").ok());
  CHECK(RunReplay(*f.ingest, {good}).status.ok());
}

TEST_CASE("Replay rejects just the profile whose strings are not UTF-8, and says which",
          "[server][ingest][replay]") {
  ServerFixture f;
  v1::Profile bad_key = MakeProfile(1);
  bad_key.set_key("r\xff");
  v1::Profile bad_value = MakeProfile(2);
  (*bad_value.mutable_attributes())["city"] = StringValue("K\xf8" "benhavn");  // Latin-1
  v1::Profile good = MakeProfile(3);
  // The generated code checks UTF-8 when parsing, not when serializing (it only logs).
  const std::string bytes = [&] {
    v1::ReplayRequest request;
    *request.add_profiles() = bad_key;
    *request.add_profiles() = bad_value;
    *request.add_profiles() = good;
    return request.SerializeAsString();
  }();
  const RawOutcome r = RunRawClientStream(f.channel, "/segd.v1.Ingest/Replay", {bytes});
  REQUIRE(r.status.ok());
  v1::ReplaySummary summary;
  REQUIRE(summary.ParseFromString(r.response));  // what it echoes is UTF-8 again
  CHECK(summary.profiles() == 1);
  REQUIRE(summary.errors_size() == 2);
  CHECK(summary.errors(0).index() == 0);
  CHECK(summary.errors(0).key() == "r\uFFFD");
  CHECK(summary.errors(0).message() == "key: must be valid UTF-8");
  CHECK(summary.errors(1).index() == 1);
  CHECK(summary.errors(1).key() == "r2");
  CHECK(summary.errors(1).message() == "attributes[\"city\"]: string is not valid UTF-8");
  CHECK(f.server->engine().GetProfile("r3").ok());
  CHECK(f.server->engine().GetProfile("r2").status().code() == absl::StatusCode::kNotFound);
}

// ---- Limits and shutdown ----

TEST_CASE("A message over --max-message-bytes is RESOURCE_EXHAUSTED", "[server][ingest]") {
  ServerOptions options = TestOptions();
  options.max_message_bytes = 4096;
  ServerFixture f(options);
  // A channel that would send anything: the server must enforce its own limit.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(f.server->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::Ingest::NewStub(channel);
  std::vector<v1::ProfileUpdate> updates;
  for (int i = 0; i < 100; ++i)
    updates.push_back(
        Set("key-" + std::to_string(i), "padding", StringValue(std::string(64, 'x'))));
  const v1::UpdateBatch big = Batch(1, std::move(updates));
  REQUIRE(big.ByteSizeLong() > 4096);

  SECTION("Apply") {
    v1::Ack ack;
    grpc::ClientContext ctx;
    CHECK(stub->Apply(&ctx, big, &ack).error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  SECTION("Stream") {
    StreamResult r = RunStream(*stub, {Batch(0, {Set("small", "n", IntValue(1))}), big});
    CHECK(r.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  CHECK(f.server->engine().GetProfile("key-0").status().code() == absl::StatusCode::kNotFound);
  // The server is still serving.
  v1::Ack ack;
  grpc::ClientContext ctx;
  REQUIRE(stub->Apply(&ctx, Batch(2, {Set("after", "n", IntValue(1))}), &ack).ok());
  CHECK(ack.applied() == 1);
}

TEST_CASE("A Stream cancelled by its client ends and frees its call", "[server][ingest]") {
  ServerFixture f;
  {
    grpc::ClientContext ctx;
    auto stream = f.ingest->Stream(&ctx);
    // More batches than may be unacked at once, none of whose Acks are read.
    for (int i = 0; i < 100; ++i) {
      if (!stream->Write(Batch(i, {Set("c" + std::to_string(i), "n", IntValue(i))}))) break;
    }
    ctx.TryCancel();
    CHECK(stream->Finish().error_code() == grpc::StatusCode::CANCELLED);
  }
  v1::Ack ack;
  grpc::ClientContext ctx;
  REQUIRE(f.ingest->Apply(&ctx, Batch(1, {Set("after", "n", IntValue(1))}), &ack).ok());
  CHECK(ack.applied() == 1);
  // A call the reactor never finished would hold Shutdown until its deadline.
  const absl::Time start = absl::Now();
  f.server->Shutdown(absl::Seconds(30));
  CHECK(absl::Now() - start < absl::Seconds(10));
}

TEST_CASE("A draining server refuses ingest and ends open streams with UNAVAILABLE",
          "[server][ingest]") {
  ServerFixture f;
  grpc::ClientContext ctx;
  auto stream = f.ingest->Stream(&ctx);
  REQUIRE(stream->Write(Batch(1, {Set("before", "n", IntValue(1))})));
  v1::Ack ack;
  REQUIRE(stream->Read(&ack));
  CHECK(ack.seq() == 1);

  std::thread shutdown([&] { f.server->Shutdown(absl::Seconds(10)); });
  // Wait until the server drains: new calls fail from then on.
  auto apply = [&](v1::UpdateBatch batch) {
    grpc::ClientContext apply_ctx;
    apply_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    v1::Ack apply_ack;
    return f.ingest->Apply(&apply_ctx, batch, &apply_ack);
  };
  for (int i = 0; i < 500 && apply(Batch(8, {})).ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // UNAVAILABLE from the handler; a call that reaches gRPC's own shutdown before any
  // handler is cancelled by gRPC itself.
  const grpc::StatusCode late = apply(Batch(9, {Set("late", "n", IntValue(1))})).error_code();
  CHECK((late == grpc::StatusCode::UNAVAILABLE || late == grpc::StatusCode::CANCELLED));

  // The open stream's next batch is not applied; the stream ends at once.
  const absl::Time before = absl::Now();
  stream->Write(Batch(2, {Set("after", "n", IntValue(1))}));
  bool got_ack = stream->Read(&ack);
  grpc::Status status = stream->Finish();
  shutdown.join();
  CHECK_FALSE(got_ack);
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(status.error_message() == "server is shutting down");
  CHECK(absl::Now() - before < absl::Seconds(5));  // not cut by the shutdown deadline
  CHECK(f.server->engine().GetProfile("before").ok());
  CHECK(f.server->engine().GetProfile("after").status().code() == absl::StatusCode::kNotFound);
  CHECK(f.server->engine().GetProfile("late").status().code() == absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace segd::server

namespace segd::server::testing {
namespace {

TEST_CASE("An idle Stream is finished with UNAVAILABLE as soon as the server drains",
          "[server][ingest]") {
  ServerFixture f;
  grpc::ClientContext ctx;
  auto stream = f.ingest->Stream(&ctx);
  v1::UpdateBatch batch;
  batch.set_seq(1);
  batch.add_updates()->set_key("u1");
  REQUIRE(stream->Write(batch));
  v1::Ack ack;
  REQUIRE(stream->Read(&ack));
  CHECK(ack.seq() == 1);
  // The producer now sits idle; the drain must not wait for its deadline.
  const absl::Time start = absl::Now();
  std::thread drain([&] { f.server->Shutdown(absl::Seconds(20)); });
  CHECK_FALSE(stream->Read(&ack));
  const grpc::Status status = stream->Finish();
  drain.join();
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(status.error_message() == "server is shutting down");
  CHECK(absl::Now() - start < absl::Seconds(5));
}

TEST_CASE("An idle Replay is finished with UNAVAILABLE as soon as the server drains",
          "[server][ingest][replay]") {
  ServerFixture f;
  grpc::ClientContext ctx;
  v1::ReplaySummary summary;
  auto writer = f.ingest->Replay(&ctx, &summary);
  v1::ReplayRequest message;
  *message.add_profiles() = MakeProfile(1);
  REQUIRE(writer->Write(message));
  // Wait until the message is replayed, then sit idle with the call open.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!f.server->engine().GetProfile("r1").ok() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  REQUIRE(f.server->engine().GetProfile("r1").ok());
  const absl::Time start = absl::Now();
  std::thread drain([&] { f.server->Shutdown(absl::Seconds(20)); });
  drain.join();
  CHECK(absl::Now() - start < absl::Seconds(5));
  const grpc::Status status = writer->Finish();
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(status.error_message() == "server is shutting down");
}

}  // namespace
}  // namespace segd::server::testing
