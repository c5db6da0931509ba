#include "server/changes_service.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/cursor.h"
#include "core/engine.h"
#include "core/shard_executor.h"
#include "server/service_env.h"
#include "tests/server/server_fixture.h"

namespace segd::server {
namespace {

using testing::kHour;
using testing::kT0;
using testing::ServerFixture;
using testing::TestOptions;
using Clock = std::chrono::steady_clock;

// One open Subscribe call, read with the sync API on the test thread.
struct Stream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::ChangeBatch>> reader;

  bool Read(v1::ChangeBatch* batch) { return reader->Read(batch); }
  // Reads to the end of the stream and returns its status.
  grpc::Status Finish() {
    v1::ChangeBatch ignored;
    while (reader->Read(&ignored)) {
    }
    return reader->Finish();
  }
  grpc::Status Cancel() {
    ctx.TryCancel();
    return Finish();
  }
};

std::unique_ptr<Stream> Subscribe(v1::Changes::Stub& stub, std::vector<std::string> segments = {},
                                  std::string cursor = "", bool snapshot = false) {
  auto s = std::make_unique<Stream>();
  s->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  v1::SubscribeRequest request;
  for (std::string& id : segments) request.add_segments(std::move(id));
  request.set_cursor(std::move(cursor));
  request.set_snapshot(snapshot);
  s->reader = stub.Subscribe(&s->ctx, request);
  return s;
}

// Reads the first batch of a live subscription: once it is here the subscription's
// starting cursor is fixed, so what the test applies next is delivered.
std::string ReadFirstCursor(Stream& s) {
  v1::ChangeBatch batch;
  REQUIRE(s.Read(&batch));
  CHECK(batch.changes().empty());
  REQUIRE_FALSE(batch.cursor().empty());
  return batch.cursor();
}

std::vector<uint64_t> Positions(const std::string& cursor_bytes) {
  absl::StatusOr<Cursor> c = DecodeCursor(cursor_bytes);
  REQUIRE(c.ok());
  return c->positions;
}

// Reads batches until one's cursor is `target`, collecting their changes.
std::vector<v1::Change> ReadUntil(Stream& s, const Cursor& target,
                                  std::vector<v1::ChangeBatch>* batches = nullptr) {
  std::vector<v1::Change> out;
  while (true) {
    v1::ChangeBatch batch;
    REQUIRE(s.Read(&batch));
    CHECK(batch.changes_size() <= 4096);
    for (const v1::Change& c : batch.changes()) out.push_back(c);
    if (batches != nullptr) batches->push_back(batch);
    if (!batch.cursor().empty() && Positions(batch.cursor()) == target.positions) return out;
  }
}

// "key segment ENTER cause" lines, for comparing what a stream delivered.
std::string Describe(const v1::Change& c) {
  return c.key() + " " + c.segment() + " " + v1::ChangeKind_Name(c.kind()) + " " +
         v1::Cause_Name(c.cause());
}
std::vector<std::string> Describe(const std::vector<v1::Change>& changes) {
  std::vector<std::string> out;
  for (const v1::Change& c : changes) out.push_back(Describe(c));
  return out;
}
std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

void Put(Engine& engine, const std::string& id, const std::string& rule) {
  absl::StatusOr<PutSegmentResult> r = engine.PutSegment({id, rule, ""}, false);
  INFO(r.status().message());
  REQUIRE(r.ok());
}

ProfileUpdate SetAttr(std::string key, std::string name, Value value) {
  ProfileUpdate u;
  u.key = std::move(key);
  u.set.emplace_back(std::move(name), std::move(value));
  return u;
}

void Apply(Engine& engine, std::vector<ProfileUpdate> updates) {
  BatchResult r = engine.Apply(updates);
  INFO((r.errors.empty() ? std::string() : r.errors[0].message));
  REQUIRE(r.errors.empty());
}

void ApplyOne(Engine& engine, ProfileUpdate update) {
  std::vector<ProfileUpdate> updates;
  updates.push_back(std::move(update));
  Apply(engine, std::move(updates));
}

TEST_CASE("Subscribe resumes after a batch's cursor with exactly the changes after it",
          "[server][changes]") {
  ServerFixture f;
  Engine& engine = f.server->engine();
  Put(engine, "adult", "age >= 18");

  std::unique_ptr<Stream> s = Subscribe(*f.changes);
  const std::string start = ReadFirstCursor(*s);
  for (int i = 0; i < 5; ++i)
    ApplyOne(engine, SetAttr("k" + std::to_string(i), "age", Value::Int(20)));
  const Cursor middle = engine.CurrentCursor();
  std::vector<v1::Change> first = ReadUntil(*s, middle);
  for (int i = 5; i < 10; ++i)
    ApplyOne(engine, SetAttr("k" + std::to_string(i), "age", Value::Int(20)));
  ApplyOne(engine, SetAttr("k0", "age", Value::Int(3)));
  const Cursor end = engine.CurrentCursor();
  std::vector<v1::Change> second = ReadUntil(*s, end);
  CHECK(s->Cancel().error_code() == grpc::StatusCode::CANCELLED);

  REQUIRE(first.size() == 5);
  CHECK(Sorted(Describe(first)) ==
        std::vector<std::string>{
            "k0 adult CHANGE_KIND_ENTER CAUSE_UPDATE", "k1 adult CHANGE_KIND_ENTER CAUSE_UPDATE",
            "k2 adult CHANGE_KIND_ENTER CAUSE_UPDATE", "k3 adult CHANGE_KIND_ENTER CAUSE_UPDATE",
            "k4 adult CHANGE_KIND_ENTER CAUSE_UPDATE"});
  REQUIRE(second.size() == 6);
  for (const v1::Change& c : second) CHECK(c.time() == kT0);

  SECTION("from the cursor of the batch that ended the first part") {
    std::unique_ptr<Stream> r = Subscribe(*f.changes, {}, EncodeCursor(middle));
    std::vector<v1::Change> rest = ReadUntil(*r, end);
    CHECK(Describe(rest).size() == 6);
    CHECK(Sorted(Describe(rest)) == Sorted(Describe(second)));
    // Nothing else follows: the next batch is a heartbeat.
    v1::ChangeBatch batch;
    REQUIRE(r->Read(&batch));
    CHECK(batch.changes().empty());
    CHECK(Positions(batch.cursor()) == end.positions);
    r->Cancel();
  }
  SECTION("from the first batch's cursor") {
    std::unique_ptr<Stream> r = Subscribe(*f.changes, {}, start);
    std::vector<v1::Change> all = ReadUntil(*r, end);
    std::vector<std::string> want = Describe(first);
    for (const v1::Change& c : second) want.push_back(Describe(c));
    CHECK(Sorted(Describe(all)) == Sorted(want));
    r->Cancel();
  }
}

TEST_CASE("Changes applied while nobody subscribes reach a later subscription from its cursor",
          "[server][changes]") {
  // With no subscription registered the change pump is not woken at all.
  ServerFixture f;
  Engine& engine = f.server->engine();
  Put(engine, "adult", "age >= 18");
  const Cursor before = engine.CurrentCursor();
  for (int i = 0; i < 3; ++i)
    ApplyOne(engine, SetAttr("k" + std::to_string(i), "age", Value::Int(20)));
  const Cursor after = engine.CurrentCursor();

  std::unique_ptr<Stream> s = Subscribe(*f.changes, {}, EncodeCursor(before));
  CHECK(Sorted(Describe(ReadUntil(*s, after))) ==
        std::vector<std::string>{"k0 adult CHANGE_KIND_ENTER CAUSE_UPDATE",
                                 "k1 adult CHANGE_KIND_ENTER CAUSE_UPDATE",
                                 "k2 adult CHANGE_KIND_ENTER CAUSE_UPDATE"});
  // Once it is registered, what is applied next wakes the pump.
  ApplyOne(engine, SetAttr("k0", "age", Value::Int(3)));
  CHECK(Describe(ReadUntil(*s, engine.CurrentCursor())) ==
        std::vector<std::string>{"k0 adult CHANGE_KIND_EXIT CAUSE_UPDATE"});
  s->Cancel();
}

TEST_CASE("Every batch's cursor resumes exactly after that batch", "[server][changes]") {
  ServerFixture f;
  Engine& engine = f.server->engine();
  Put(engine, "flag", "flag = true");
  std::unique_ptr<Stream> s = Subscribe(*f.changes);
  ReadFirstCursor(*s);
  // Several appends in batches of different sizes, so the stream's batches split them.
  std::vector<std::string> applied;
  for (int round = 0; round < 6; ++round) {
    std::vector<ProfileUpdate> updates;
    for (int i = 0; i <= round * 7; ++i) {
      updates.push_back(SetAttr("p" + std::to_string(i), "flag", Value::Bool(round % 2 == 0)));
    }
    Apply(engine, std::move(updates));
  }
  const Cursor end = engine.CurrentCursor();
  std::vector<v1::ChangeBatch> batches;
  std::vector<v1::Change> all = ReadUntil(*s, end, &batches);
  s->Cancel();

  size_t seen = 0;
  for (const v1::ChangeBatch& b : batches) {
    seen += b.changes_size();
    std::unique_ptr<Stream> r = Subscribe(*f.changes, {}, b.cursor());
    std::vector<v1::Change> rest = ReadUntil(*r, end);
    r->Cancel();
    std::vector<std::string> want;
    for (size_t i = seen; i < all.size(); ++i) want.push_back(Describe(all[i]));
    CHECK(Sorted(Describe(rest)) == Sorted(want));
  }
}

TEST_CASE("Snapshot then live changes lose and repeat nothing under concurrent ingest",
          "[server][changes]") {
  ServerFixture f;
  Engine& engine = f.server->engine();
  Put(engine, "high", "score >= 50");
  constexpr int kKeys = 12000;
  {
    std::vector<ProfileUpdate> updates;
    for (int i = 0; i < kKeys; ++i) {
      updates.push_back(SetAttr("u" + std::to_string(i), "score", Value::Int(i % 100)));
    }
    Apply(engine, std::move(updates));  // 6000 members: the snapshot takes two batches
  }

  std::atomic<int> batches_applied{0};
  std::atomic<int> errors{0};
  constexpr int kBatches = 300;
  std::thread producer([&] {
    std::mt19937 rnd(301);
    for (int b = 0; b < kBatches; ++b) {
      std::vector<ProfileUpdate> updates;
      for (int i = 0; i < 100; ++i) {
        updates.push_back(SetAttr("u" + std::to_string(rnd() % kKeys), "score",
                                  Value::Int(static_cast<int64_t>(rnd() % 100))));
      }
      if (!engine.Apply(updates).errors.empty()) ++errors;
      batches_applied.fetch_add(1);
    }
  });
  while (batches_applied.load() < 20) std::this_thread::yield();

  std::unique_ptr<Stream> s = Subscribe(*f.changes, {}, "", /*snapshot=*/true);
  std::set<std::string> members;
  int duplicate_enters = 0, stray_exits = 0, snapshot_batches = 0, snapshot_members = 0;
  bool snapshot_done = false, joined = false;
  int after_done_with_members = 0, producer_batches_at_cut = 0, live_changes = 0;
  Cursor end;
  while (true) {
    v1::ChangeBatch batch;
    REQUIRE(s->Read(&batch));
    CHECK(batch.changes_size() <= 4096);
    if (!snapshot_done) {
      if (batch.snapshot_done()) {
        snapshot_done = true;
        producer_batches_at_cut = batches_applied.load();
        CHECK(batch.changes().empty());
        CHECK_FALSE(batch.cursor().empty());
      } else {
        ++snapshot_batches;
        CHECK(batch.cursor().empty());
      }
    } else {
      CHECK_FALSE(batch.snapshot_done());
      CHECK_FALSE(batch.cursor().empty());
    }
    for (const v1::Change& c : batch.changes()) {
      if (!snapshot_done) {
        ++snapshot_members;
        CHECK(c.cause() == v1::CAUSE_SNAPSHOT);
      } else {
        ++live_changes;
        if (c.cause() == v1::CAUSE_SNAPSHOT) ++after_done_with_members;
      }
      if (c.kind() == v1::CHANGE_KIND_ENTER) {
        if (!members.insert(c.key()).second) ++duplicate_enters;
      } else if (members.erase(c.key()) == 0) {
        ++stray_exits;
      }
    }
    if (!joined && batches_applied.load() == kBatches) {
      producer.join();
      joined = true;
      end = engine.CurrentCursor();
    }
    if (joined && snapshot_done && !batch.cursor().empty() &&
        Positions(batch.cursor()) == end.positions) {
      break;
    }
  }
  s->Cancel();
  if (!joined) producer.join();

  WARN("snapshot of " << snapshot_members << " members in " << snapshot_batches
                      << " batches, done when the producer had applied " << producer_batches_at_cut
                      << " of " << kBatches << " batches; then " << live_changes
                      << " live changes");
  CHECK(errors.load() == 0);
  CHECK(snapshot_batches >= 2);
  CHECK(snapshot_members >= 4096);
  CHECK(after_done_with_members == 0);
  CHECK(duplicate_enters == 0);
  CHECK(stray_exits == 0);
  absl::StatusOr<std::vector<std::string>> want = engine.Members("high");
  REQUIRE(want.ok());
  CHECK(std::set<std::string>(want->begin(), want->end()) == members);
}

TEST_CASE("A snapshot of some segments sends only their members", "[server][changes]") {
  ServerFixture f;
  Engine& engine = f.server->engine();
  Put(engine, "a", "x = 1");
  Put(engine, "b", "x = 2");
  Apply(engine, {SetAttr("p1", "x", Value::Int(1)), SetAttr("p2", "x", Value::Int(2)),
                 SetAttr("p3", "x", Value::Int(1))});
  std::unique_ptr<Stream> s = Subscribe(*f.changes, {"a", "undefined_yet"}, "", true);
  std::vector<v1::Change> got;
  v1::ChangeBatch batch;
  while (s->Read(&batch) && !batch.snapshot_done()) {
    for (const v1::Change& c : batch.changes()) got.push_back(c);
  }
  REQUIRE(batch.snapshot_done());
  CHECK(Positions(batch.cursor()) == engine.CurrentCursor().positions);
  CHECK(Sorted(Describe(got)) == std::vector<std::string>{"p1 a CHANGE_KIND_ENTER CAUSE_SNAPSHOT",
                                                          "p3 a CHANGE_KIND_ENTER CAUSE_SNAPSHOT"});
  for (const v1::Change& c : got) CHECK(c.time() == kT0);
  Put(engine, "undefined_yet", "x = 2");
  std::vector<v1::Change> live = ReadUntil(*s, engine.CurrentCursor());
  CHECK(Describe(live) ==
        std::vector<std::string>{"p2 undefined_yet CHANGE_KIND_ENTER CAUSE_SEGMENT_PUT"});
  s->Cancel();
}

TEST_CASE("A segment filter delivers only the listed segments, defined later too",
          "[server][changes]") {
  ServerFixture f;
  Engine& engine = f.server->engine();
  Put(engine, "a", "x = 1");
  Put(engine, "b", "x = 2");

  std::unique_ptr<Stream> filtered = Subscribe(*f.changes, {"a", "c"});
  std::unique_ptr<Stream> all = Subscribe(*f.changes);
  ReadFirstCursor(*filtered);
  ReadFirstCursor(*all);

  ApplyOne(engine, SetAttr("p1", "x", Value::Int(1)));
  ApplyOne(engine, SetAttr("p2", "x", Value::Int(2)));
  ApplyOne(engine, SetAttr("p3", "x", Value::Int(3)));
  Put(engine, "c", "x = 3");                            // p3 enters c: SEGMENT_PUT
  Put(engine, "d", "x = 3");                            // not in the filter
  ApplyOne(engine, SetAttr("p4", "x", Value::Int(3)));  // enters c and d: UPDATE
  const Cursor end = engine.CurrentCursor();

  CHECK(Sorted(Describe(ReadUntil(*filtered, end))) ==
        std::vector<std::string>{"p1 a CHANGE_KIND_ENTER CAUSE_UPDATE",
                                 "p3 c CHANGE_KIND_ENTER CAUSE_SEGMENT_PUT",
                                 "p4 c CHANGE_KIND_ENTER CAUSE_UPDATE"});
  CHECK(Sorted(Describe(ReadUntil(*all, end))) ==
        std::vector<std::string>{
            "p1 a CHANGE_KIND_ENTER CAUSE_UPDATE", "p2 b CHANGE_KIND_ENTER CAUSE_UPDATE",
            "p3 c CHANGE_KIND_ENTER CAUSE_SEGMENT_PUT", "p3 d CHANGE_KIND_ENTER CAUSE_SEGMENT_PUT",
            "p4 c CHANGE_KIND_ENTER CAUSE_UPDATE", "p4 d CHANGE_KIND_ENTER CAUSE_UPDATE"});
  filtered->Cancel();
  all->Cancel();

  SECTION("a malformed segment id is INVALID_ARGUMENT") {
    std::unique_ptr<Stream> bad = Subscribe(*f.changes, {"a", "not an id"});
    grpc::Status status = bad->Finish();
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(status.error_message().find("segment id") != std::string::npos);
  }
}

TEST_CASE("Subscriptions reading on from the same cursor each get their own filter's changes",
          "[server][changes]") {
  // Batches are shared between subscriptions at the same cursor with the same filter:
  // here every stream starts from one cursor with the changes already in the log.
  ServerFixture f;
  Engine& engine = f.server->engine();
  Put(engine, "a", "x = 1");
  Put(engine, "b", "x = 2");
  const std::string start = EncodeCursor(engine.CurrentCursor());
  std::vector<ProfileUpdate> updates;
  for (int i = 0; i < 3000; ++i) {
    updates.push_back(SetAttr("p" + std::to_string(i), "x", Value::Int(1 + i % 3)));
  }
  Apply(engine, std::move(updates));
  const Cursor end = engine.CurrentCursor();

  const std::vector<std::vector<std::string>> filters = {{},    {"a"},      {},         {"b"},
                                                         {"a"}, {"a", "b"}, {"b", "a"}, {}};
  std::vector<std::unique_ptr<Stream>> streams;
  for (const std::vector<std::string>& filter : filters) {
    streams.push_back(Subscribe(*f.changes, filter, start));
  }
  for (size_t i = 0; i < filters.size(); ++i) {
    INFO("stream " << i);
    std::set<std::string> want;
    for (const char* segment : {"a", "b"}) {
      const std::vector<std::string>& filter = filters[i];
      if (!filter.empty() && std::find(filter.begin(), filter.end(), segment) == filter.end()) {
        continue;
      }
      for (int p = (segment[0] == 'a' ? 0 : 1); p < 3000; p += 3) {
        want.insert("p" + std::to_string(p) + " " + segment + " CHANGE_KIND_ENTER CAUSE_UPDATE");
      }
    }
    const std::vector<std::string> got = Describe(ReadUntil(*streams[i], end));
    CHECK(got.size() == want.size());  // nothing repeated
    CHECK(std::set<std::string>(got.begin(), got.end()) == want);
  }
  for (auto& s : streams) s->Cancel();
}

TEST_CASE("A SubscribeRequest that is not a protobuf message is INVALID_ARGUMENT",
          "[server][changes]") {
  ServerFixture f;
  grpc::GenericStub stub(f.channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub.PrepareCall(&ctx, "/segd.v1.Changes/Subscribe", &cq);
  void* tag = nullptr;
  bool ok = false;
  const auto next = [&](intptr_t want) {
    REQUIRE(cq.Next(&tag, &ok));
    CHECK(reinterpret_cast<intptr_t>(tag) == want);
  };
  call->StartCall(reinterpret_cast<void*>(1));
  next(1);
  const std::string garbage = "\x0a\xff\xff\xff";  // field 1: a length past the end
  grpc::Slice slice(garbage);
  grpc::ByteBuffer request(&slice, 1);
  call->WriteLast(request, grpc::WriteOptions(), reinterpret_cast<void*>(2));
  next(2);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(3));
  next(3);
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(status.error_message() == "SubscribeRequest: not a valid protobuf message");
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_CASE("An idle subscription gets a heartbeat with its cursor", "[server][changes]") {
  ServerFixture f;
  Put(f.server->engine(), "a", "x = 1");
  ApplyOne(f.server->engine(), SetAttr("p1", "x", Value::Int(1)));
  std::unique_ptr<Stream> s = Subscribe(*f.changes, {"a"});
  const std::string first = ReadFirstCursor(*s);
  CHECK(Positions(first) == f.server->engine().CurrentCursor().positions);
  for (int i = 0; i < 3; ++i) {
    const auto start = Clock::now();
    v1::ChangeBatch batch;
    REQUIRE(s->Read(&batch));
    const auto waited = Clock::now() - start;
    CHECK(waited < std::chrono::milliseconds(1500));
    CHECK(batch.changes().empty());
    CHECK_FALSE(batch.snapshot_done());
    CHECK(batch.cursor() == first);
  }
  s->Cancel();
}

TEST_CASE("A subscriber that falls behind the change log gets OUT_OF_RANGE", "[server][changes]") {
  ServerOptions options = TestOptions();
  options.engine.change_log_capacity = 10;
  ServerFixture f(options);
  Engine& engine = f.server->engine();
  Put(engine, "a", "x = 1");

  std::unique_ptr<Stream> s = Subscribe(*f.changes);
  const std::string start = ReadFirstCursor(*s);
  // One append per shard of far more than the log holds: whatever the stream sent
  // before, its cursor is now older than both logs.
  std::vector<ProfileUpdate> updates;
  for (int i = 0; i < 200; ++i)
    updates.push_back(SetAttr("p" + std::to_string(i), "x", Value::Int(1)));
  Apply(engine, std::move(updates));

  grpc::Status status = s->Finish();
  CHECK(status.error_code() == grpc::StatusCode::OUT_OF_RANGE);

  SECTION("and so does a new subscription from an old cursor") {
    std::unique_ptr<Stream> r = Subscribe(*f.changes, {}, start);
    v1::ChangeBatch batch;
    CHECK_FALSE(r->Read(&batch));
    CHECK(r->reader->Finish().error_code() == grpc::StatusCode::OUT_OF_RANGE);
  }
  SECTION("a snapshot starts over") {
    std::unique_ptr<Stream> r = Subscribe(*f.changes, {}, start, /*snapshot=*/true);
    int members = 0;
    v1::ChangeBatch batch;
    while (r->Read(&batch) && !batch.snapshot_done()) members += batch.changes_size();
    CHECK(batch.snapshot_done());
    CHECK(members == 200);
    r->Cancel();
  }
}

TEST_CASE("A cursor of another server incarnation is OUT_OF_RANGE", "[server][changes]") {
  ServerFixture f;
  ServerFixture other;
  std::unique_ptr<Stream> s = Subscribe(*other.changes);
  const std::string foreign = ReadFirstCursor(*s);
  s->Cancel();
  REQUIRE(DecodeCursor(foreign)->incarnation != f.server->engine().incarnation());

  std::unique_ptr<Stream> r = Subscribe(*f.changes, {}, foreign);
  grpc::Status status = r->Finish();
  CHECK(status.error_code() == grpc::StatusCode::OUT_OF_RANGE);
  CHECK(status.error_message().find("incarnation") != std::string::npos);
}

TEST_CASE("A cursor that is not one is INVALID_ARGUMENT", "[server][changes]") {
  ServerFixture f;
  Cursor wrong_shards = f.server->engine().CurrentCursor();
  wrong_shards.positions.push_back(0);
  Cursor past_end = f.server->engine().CurrentCursor();
  past_end.positions[0] += 5;
  std::string damaged = EncodeCursor(f.server->engine().CurrentCursor());
  damaged[1] ^= 1;
  for (const std::string& cursor : {std::string("garbage"), std::string("\x01"), damaged,
                                    EncodeCursor(wrong_shards), EncodeCursor(past_end)}) {
    std::unique_ptr<Stream> s = Subscribe(*f.changes, {}, cursor);
    grpc::Status status = s->Finish();
    INFO(status.error_message());
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_CASE("A subscriber that stops reading does not slow ingest", "[server][changes]") {
  ServerFixture f;
  Engine& engine = f.server->engine();
  Put(engine, "on", "flag = true");
  // 50 rounds over 1000 profiles, each update flipping its profile's membership.
  constexpr int kRounds = 50, kKeys = 1000;
  auto ingest = [&](const std::string& prefix) {
    const auto start = Clock::now();
    for (int round = 0; round < kRounds; ++round) {
      std::vector<ProfileUpdate> updates;
      for (int i = 0; i < kKeys; ++i) {
        updates.push_back(SetAttr(prefix + std::to_string(i), "flag", Value::Bool(round % 2 == 0)));
      }
      Apply(engine, std::move(updates));
    }
    return Clock::now() - start;
  };
  const auto alone = ingest("q");
  std::unique_ptr<Stream> stalled = Subscribe(*f.changes);
  ReadFirstCursor(*stalled);
  const auto with_stalled = ingest("p");
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  WARN("50k updates: " << ms(alone) << " ms alone, " << ms(with_stalled)
                       << " ms with a stalled subscriber");
  CHECK(with_stalled < 4 * alone + std::chrono::seconds(2));
  CHECK(engine.Stats().changes_emitted == 2 * kRounds * kKeys);

  // The subscriber was only behind: reading on, it gets every change, in bounded batches.
  std::vector<v1::ChangeBatch> batches;
  std::vector<v1::Change> got = ReadUntil(*stalled, engine.CurrentCursor(), &batches);
  CHECK(got.size() == kRounds * kKeys);
  for (const v1::ChangeBatch& b : batches) CHECK(b.changes_size() <= 4096);
  stalled->Cancel();
}

TEST_CASE("TIME changes arrive with the exact moment they became due", "[server][changes]") {
  ServerFixture f;
  Engine& engine = f.server->engine();
  Put(engine, "recent", "did(login within 1h)");
  std::unique_ptr<Stream> s = Subscribe(*f.changes, {"recent"});
  ReadFirstCursor(*s);
  ProfileUpdate u;
  u.key = "p";
  u.events.push_back(Event{"login", kT0 - 1000, "", {}});
  ApplyOne(engine, std::move(u));
  REQUIRE(engine.SetTime(kT0 + 2 * kHour).ok());
  std::vector<v1::Change> got = ReadUntil(*s, engine.CurrentCursor());
  REQUIRE(got.size() == 2);
  CHECK(Describe(got[0]) == "p recent CHANGE_KIND_ENTER CAUSE_UPDATE");
  CHECK(got[0].time() == kT0);
  CHECK(Describe(got[1]) == "p recent CHANGE_KIND_EXIT CAUSE_TIME");
  CHECK(got[1].time() == kT0 - 1000 + kHour);
  s->Cancel();
}

TEST_CASE("A change reaches a keeping-up subscriber within milliseconds", "[server][changes]") {
  ServerFixture f;
  Engine& engine = f.server->engine();
  Put(engine, "on", "flag = true");
  std::unique_ptr<Stream> s = Subscribe(*f.changes, {"on"});
  ReadFirstCursor(*s);
  // From before Apply (an upper bound: it includes Apply's own round trip to the shard)
  // and from Apply's return (often negative-free zero: the batch is already on its way).
  std::vector<double> from_start_ms, from_return_ms;
  for (int i = 0; i < 200; ++i) {
    const auto start = Clock::now();
    ApplyOne(engine, SetAttr("p", "flag", Value::Bool(i % 2 == 0)));
    const auto applied = Clock::now();
    v1::ChangeBatch batch;
    do {
      REQUIRE(s->Read(&batch));
    } while (batch.changes().empty());
    REQUIRE(batch.changes_size() == 1);
    const auto read = Clock::now();
    from_start_ms.push_back(std::chrono::duration<double, std::milli>(read - start).count());
    from_return_ms.push_back(std::chrono::duration<double, std::milli>(read - applied).count());
  }
  s->Cancel();
  auto summary = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    std::ostringstream out;
    out << "median " << v[v.size() / 2] << " ms, p99 " << v[v.size() * 99 / 100] << " ms, max "
        << v.back() << " ms";
    return out.str();
  };
  WARN("change latency from before Apply: " << summary(from_start_ms) << "; from Apply's return: "
                                            << summary(from_return_ms));
  std::sort(from_start_ms.begin(), from_start_ms.end());
  CHECK(from_start_ms[from_start_ms.size() / 2] < 20.0);
}

TEST_CASE("Batches applied back to back reach a subscriber together, every change of them",
          "[server][changes]") {
  // 200 batches posted at once keep both shards busy: a shard appending changes with two
  // or more batches queued behind them leaves them to the pump's paced pass
  // (SubscriptionHub; the wakeup's own tests check that rule), and a subscriber gets every
  // change, in far fewer batches than the shards flushed (400).
  ServerFixture f;
  Engine& engine = f.server->engine();
  Put(engine, "on", "flag = true");
  std::unique_ptr<Stream> s = Subscribe(*f.changes, {"on"});
  ReadFirstCursor(*s);
  constexpr int kBatches = 200, kPerBatch = 20;
  std::atomic<int> acked{0}, failed{0};
  std::set<std::string> expected;
  for (int b = 0; b < kBatches; ++b) {
    std::vector<ProfileUpdate> batch;
    for (int i = 0; i < kPerBatch; ++i) {
      const std::string key = "k" + std::to_string(b * kPerBatch + i);
      batch.push_back(SetAttr(key, "flag", Value::Bool(true)));
      expected.insert(key + " on CHANGE_KIND_ENTER CAUSE_UPDATE");
    }
    engine.ApplyAsync(std::move(batch), [&](BatchResult r) {
      if (!r.errors.empty()) ++failed;
      ++acked;
    });
  }
  while (acked.load() < kBatches) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(failed.load() == 0);
  std::vector<v1::ChangeBatch> batches;
  const std::vector<std::string> got = Describe(ReadUntil(*s, engine.CurrentCursor(), &batches));
  CHECK(std::set<std::string>(got.begin(), got.end()) == expected);
  CHECK(got.size() == expected.size());
  const auto with_changes =
      std::count_if(batches.begin(), batches.end(),
                    [](const v1::ChangeBatch& b) { return b.changes_size() > 0; });
  INFO(with_changes << " batches with changes");
  CHECK(with_changes < kBatches / 2);
  s->Cancel();
}

TEST_CASE("Shutdown ends open subscriptions with UNAVAILABLE", "[server][changes]") {
  ServerFixture f;
  std::unique_ptr<Stream> live = Subscribe(*f.changes);
  ReadFirstCursor(*live);
  std::unique_ptr<Stream> snapshot = Subscribe(*f.changes, {}, "", true);
  v1::ChangeBatch batch;
  REQUIRE(snapshot->Read(&batch));
  CHECK(batch.snapshot_done());
  f.server->Shutdown(absl::Seconds(5));
  for (Stream* s : {live.get(), snapshot.get()}) {
    grpc::Status status = s->Finish();
    CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(status.error_message() == "server is shutting down");
  }
}

// The service alone behind a plain gRPC server, to drive FinishAll and draining directly.
struct ServiceHarness {
  ManualClock clock{kT0};
  std::unique_ptr<ThreadedExecutor> executor = std::make_unique<ThreadedExecutor>(2);
  Engine engine{EngineOptions{}, 2, clock, executor.get()};
  ServiceEnv env{engine, true, 64 << 20};
  ChangesService service{env};
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::Changes::Stub> stub;

  ServiceHarness() {
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    REQUIRE(port != 0);
    stub = v1::Changes::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                    grpc::InsecureChannelCredentials()));
  }
  // As Server does: gRPC first, then the shard threads, while the engine is still there.
  ~ServiceHarness() {
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server->Wait();
    executor.reset();
  }
};

TEST_CASE("FinishAll ends every subscription, and later ones are refused", "[server][changes]") {
  ServiceHarness h;
  std::unique_ptr<Stream> a = Subscribe(*h.stub);
  std::unique_ptr<Stream> b = Subscribe(*h.stub, {"x"});
  ReadFirstCursor(*a);
  ReadFirstCursor(*b);
  std::unique_ptr<Stream> stalled = Subscribe(*h.stub);  // never read

  h.service.FinishAll();
  for (Stream* s : {a.get(), b.get(), stalled.get()}) {
    grpc::Status status = s->Finish();
    CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK(status.error_message() == "server is shutting down");
  }
  std::unique_ptr<Stream> late = Subscribe(*h.stub);
  CHECK(late->Finish().error_code() == grpc::StatusCode::UNAVAILABLE);

  h.env.draining = true;
  std::unique_ptr<Stream> draining = Subscribe(*h.stub);
  grpc::Status status = draining->Finish();
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(status.error_message() == "server is shutting down");
}

}  // namespace
}  // namespace segd::server
