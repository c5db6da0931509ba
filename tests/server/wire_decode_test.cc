// The wire decoder of Stream and Replay against the generated parser followed by
// UpdatesFromProto / ProfilesFromProto, on random messages and on the wire's corner
// cases: whatever bytes both accept must come out the same.
#include "server/wire_decode.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <memory_resource>
#include <random>
#include <string>
#include <vector>

#include "server/convert.h"

namespace segd {

static bool operator==(const UpdateError& a, const UpdateError& b) {
  return a.index == b.index && a.key == b.key && a.message == b.message;
}

namespace server {
namespace {

bool SameUpdate(const ProfileUpdate& a, const ProfileUpdate& b) {
  return a.key == b.key && a.set == b.set && a.unset == b.unset && a.increment == b.increment &&
         a.events == b.events && a.del == b.del;
}

std::string Describe(const std::vector<UpdateError>& errors) {
  std::string out;
  for (const UpdateError& e : errors) {
    out += std::to_string(e.index) + " " + e.key + ": " + e.message + "\n";
  }
  return out;
}

// Random messages with every kind of value, values without a kind now and then, events
// with and without ids, deletes, and names that sort in any order.
class RandomMessages {
 public:
  explicit RandomMessages(uint32_t seed) : rng_(seed) {}

  v1::UpdateBatch Batch() {
    v1::UpdateBatch batch;
    batch.set_seq(rng_());
    const int n = Int(0, 6);
    for (int i = 0; i < n; ++i) Update(batch.add_updates());
    return batch;
  }

  v1::ReplayRequest Replay() {
    v1::ReplayRequest request;
    request.set_quiet(Chance(0.5));
    const int n = Int(0, 6);
    for (int i = 0; i < n; ++i) Profile(request.add_profiles());
    return request;
  }

  void Profile(v1::Profile* p) {
    p->set_key(Name());
    Map(p->mutable_attributes(), Int(0, 9));
    const int events = Int(0, 6);
    for (int i = 0; i < events; ++i) Event(p->add_events());
    if (Chance(0.2)) p->add_segments("ignored");
  }

  void Update(v1::ProfileUpdate* u) {
    u->set_key(Name());
    Map(u->mutable_set(), Int(0, 4));
    for (int i = Int(0, 2); i > 0; --i) u->add_unset(Name());
    Map(u->mutable_increment(), Int(0, 2));
    for (int i = Int(0, 3); i > 0; --i) Event(u->add_events());
    u->set_delete_(Chance(0.1));
  }

 private:
  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  std::string Name() {
    static const char* const kNames[] = {"a", "b", "country", "url", "Z", "ä", "a1", "plan"};
    return kNames[Int(0, 7)];
  }

  void Event(v1::Event* e) {
    e->set_type(Chance(0.5) ? "page_view" : "purchase");
    e->set_time(Chance(0.2) ? 0 : 1'700'000'000'000 + Int(0, 1'000'000));
    if (Chance(0.3)) e->set_id("id" + std::to_string(Int(0, 3)));
    Map(e->mutable_properties(), Int(0, 3));
  }

  void Map(google::protobuf::Map<std::string, v1::Value>* map, int n) {
    for (int i = 0; i < n; ++i) Value(&(*map)[Name()]);
  }

  void Value(v1::Value* v) {
    switch (Int(0, 7)) {
      case 0:
        v->set_string_value(std::string(static_cast<size_t>(Int(0, 40)), 'x'));
        break;
      case 1:
        v->set_int_value(static_cast<int64_t>(rng_()) - (int64_t{1} << 31));
        break;
      case 2:
        v->set_float_value(Int(-1000, 1000) / 8.0);
        break;
      case 3:
        v->set_bool_value(Chance(0.5));
        break;
      case 4:
        v->set_time_value(1'700'000'000'000 + Int(0, 1000));
        break;
      case 5:
        for (int i = Int(0, 3); i > 0; --i) v->mutable_list_value()->add_values(Name());
        v->mutable_list_value();  // an empty list is a list too
        break;
      case 6:
        v->set_string_value("long enough not to fit inside a std::string");
        break;
      default:
        break;  // no kind
    }
  }

  std::mt19937 rng_;
};

// Whether the bytes of `part` lie within `whole` (an empty part anywhere).
bool Within(const void* data, size_t size, std::string_view whole) {
  if (size == 0) return true;
  const auto* p = static_cast<const char*>(data);
  return p >= whole.data() && p + size <= whole.data() + whole.size();
}
template <typename T>
bool Within(std::span<const T> part, std::string_view whole) {
  return Within(part.data(), part.size_bytes(), whole);
}
bool Within(std::string_view part, std::string_view whole) {
  return Within(part.data(), part.size(), whole);
}

// Whether each string an item borrows lies in its RefMemory::wire, which lies in the
// request's bytes.
bool WireHoldsStrings(const std::span<const NamedValueRef> values, std::string_view wire) {
  for (const auto& [name, value] : values) {
    if (!Within(name, wire)) return false;
    if (value.kind() == ValueKind::kString && !Within(value.string_value(), wire)) return false;
    if (value.kind() == ValueKind::kList) {
      for (std::string_view item : value.list_value()) {
        if (!Within(item, wire)) return false;
      }
    }
  }
  return true;
}
bool WireHoldsStrings(std::span<const EventRef> events, std::string_view wire) {
  for (const EventRef& e : events) {
    if (!Within(e.type, wire) || !Within(e.id, wire) || !WireHoldsStrings(e.properties, wire))
      return false;
  }
  return true;
}
bool WireHoldsStrings(const ProfileRef& p, std::string_view request) {
  const std::string_view wire = p.memory.wire;
  return Within(wire, request) && Within(p.key, wire) && WireHoldsStrings(p.attributes, wire) &&
         WireHoldsStrings(p.events, wire);
}
bool WireHoldsStrings(const UpdateRef& u, std::string_view request) {
  const std::string_view wire = u.memory.wire;
  if (!Within(wire, request) || !Within(u.key, wire)) return false;
  for (std::string_view name : u.unset) {
    if (!Within(name, wire)) return false;
  }
  return WireHoldsStrings(u.set, wire) && WireHoldsStrings(u.increment, wire) &&
         WireHoldsStrings(u.events, wire);
}

// Decodes `bytes` both ways; both must accept or both reject, and agree when they accept.
// The decoder's arena takes its blocks from `blocks`.
void CheckUpdateBatch(const std::string& bytes,
                      std::pmr::memory_resource* blocks = std::pmr::new_delete_resource()) {
  v1::UpdateBatch parsed;
  const bool proto_ok = parsed.ParseFromString(bytes);
  absl::StatusOr<DecodedUpdateBatch> decoded = DecodeUpdateBatch(bytes, blocks);
  INFO(parsed.ShortDebugString());
  REQUIRE(decoded.ok() == proto_ok);
  if (!proto_ok) {
    CHECK(decoded.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  const ConvertedBatch<ProfileUpdate> want = UpdatesFromProto(parsed.updates());
  CHECK(decoded->seq == parsed.seq());
  CHECK(decoded->updates.indexes == want.indexes);
  INFO("decoded errors:\n" << Describe(decoded->updates.errors) << "want:\n"
                           << Describe(want.errors));
  CHECK(decoded->updates.errors == want.errors);
  REQUIRE(decoded->updates.items.size() == want.items.size());
  for (size_t i = 0; i < want.items.size(); ++i) {
    INFO("update " << i);
    CHECK(SameUpdate(ToProfileUpdate(decoded->updates.items[i]), want.items[i]));
    CHECK(WireHoldsStrings(decoded->updates.items[i], bytes));
  }
}

// The decoded profiles as owned copies, as the generated parser's path gives them.
std::vector<ProfileData> Owned(const std::vector<ProfileRef>& profiles) {
  std::vector<ProfileData> out;
  for (const ProfileRef& p : profiles) out.push_back(ToProfileData(p));
  return out;
}

void CheckReplayRequest(const std::string& bytes, uint32_t first_index,
                        std::pmr::memory_resource* blocks = std::pmr::new_delete_resource()) {
  v1::ReplayRequest parsed;
  const bool proto_ok = parsed.ParseFromString(bytes);
  absl::StatusOr<DecodedReplayRequest> decoded = DecodeReplayRequest(bytes, first_index, blocks);
  INFO(parsed.ShortDebugString());
  REQUIRE(decoded.ok() == proto_ok);
  if (!proto_ok) {
    CHECK(decoded.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  const ConvertedBatch<ProfileData> want = ProfilesFromProto(parsed.profiles(), first_index);
  CHECK(decoded->quiet == parsed.quiet());
  CHECK(decoded->profiles == static_cast<uint32_t>(parsed.profiles_size()));
  CHECK(decoded->converted.indexes == want.indexes);
  INFO("decoded errors:\n" << Describe(decoded->converted.errors) << "want:\n"
                           << Describe(want.errors));
  CHECK(decoded->converted.errors == want.errors);
  CHECK(Owned(decoded->converted.items) == want.items);
  for (const ProfileRef& p : decoded->converted.items) CHECK(WireHoldsStrings(p, bytes));
}

// Wire-format pieces, for messages the generated code would never write.
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string Field(int number, const std::string& bytes) {
  return Varint(static_cast<uint64_t>(number) << 3 | 2) + Varint(bytes.size()) + bytes;
}
std::string VarintField(int number, uint64_t v) {
  return Varint(static_cast<uint64_t>(number) << 3) + Varint(v);
}

TEST_CASE("Random update batches decode as the generated parser and UpdatesFromProto do",
          "[server][wire]") {
  RandomMessages random(7);
  // As a Stream call decodes its batches: each arena in the blocks of the one before.
  RecycledBlocks blocks;
  for (int i = 0; i < 2000; ++i) {
    blocks.Rewind();
    CheckUpdateBatch(random.Batch().SerializeAsString(), &blocks);
  }
}

TEST_CASE("Random replay requests decode as the generated parser and ProfilesFromProto do",
          "[server][wire]") {
  RandomMessages random(8);
  RecycledBlocks blocks;
  for (int i = 0; i < 2000; ++i) {
    blocks.Rewind();
    CheckReplayRequest(random.Replay().SerializeAsString(), 40, &blocks);
  }
}

TEST_CASE("Recycled blocks come back in order after a rewind, replaced where too small",
          "[server][wire]") {
  RecycledBlocks blocks;
  void* first = blocks.allocate(1000, 8);
  void* second = blocks.allocate(4000, 16);
  std::memset(first, 1, 1000);
  std::memset(second, 2, 4000);
  blocks.deallocate(first, 1000, 8);  // kept, not freed
  blocks.Rewind();
  CHECK(blocks.allocate(1000, 8) == first);
  CHECK(blocks.allocate(3000, 16) == second);  // smaller: the same block
  void* third = blocks.allocate(500, 8);       // beyond the blocks kept: a new one
  CHECK(third != first);
  CHECK(third != second);
  blocks.Rewind();
  void* bigger = blocks.allocate(2000, 8);  // larger than the first block: replaced
  std::memset(bigger, 3, 2000);
  void* aligned = blocks.allocate(100, 256);  // more aligned than the second: replaced
  CHECK(reinterpret_cast<uintptr_t>(aligned) % 256 == 0);
  blocks.Rewind();
  CHECK(blocks.allocate(2000, 8) == bigger);
  CHECK(blocks.allocate(100, 256) == aligned);
  CHECK(blocks.allocate(500, 8) == third);
}

TEST_CASE("Arenas one after another in recycled blocks reuse them", "[server][wire]") {
  RandomMessages random(11);
  v1::ReplayRequest request;
  for (int i = 0; i < 40; ++i) request.MergeFrom(random.Replay());
  const std::string bytes = request.SerializeAsString();
  RecycledBlocks blocks;
  std::vector<ProfileData> want;
  const EventRef* want_events = nullptr;  // where the first round kept a profile's events
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    blocks.Rewind();
    absl::StatusOr<DecodedReplayRequest> decoded = DecodeReplayRequest(bytes, 0, &blocks);
    REQUIRE(decoded.ok());
    const ProfileRef* with_events = nullptr;
    for (const ProfileRef& p : decoded->converted.items) {
      if (!p.events.empty()) with_events = &p;
    }
    REQUIRE(with_events != nullptr);
    if (round == 0) {
      want = Owned(decoded->converted.items);
      want_events = with_events->events.data();
      continue;
    }
    CHECK(Owned(decoded->converted.items) == want);
    CHECK(with_events->events.data() == want_events);  // the same blocks, filled again
  }
}

TEST_CASE("A decoded item's memory holds its entries and events, for prefetching",
          "[server][wire]") {
  // A request small enough for the arena's first block: each item's copies lie together.
  RandomMessages random(10);
  v1::ReplayRequest replay;
  for (int i = 0; i < 8; ++i) random.Profile(replay.add_profiles());
  const std::string replay_bytes = replay.SerializeAsString();
  absl::StatusOr<DecodedReplayRequest> profiles = DecodeReplayRequest(replay_bytes, 0);
  REQUIRE(profiles.ok());
  for (const ProfileRef& p : profiles->converted.items) {
    CHECK(WireHoldsStrings(p, replay_bytes));
    const std::string_view arena = p.memory.arena;
    CHECK(Within(p.attributes, arena));
    CHECK(Within(p.events, arena));
    for (const EventRef& e : p.events) CHECK(Within(e.properties, arena));
    for (const auto& [name, value] : p.attributes) {
      if (value.kind() == ValueKind::kList) CHECK(Within(value.list_value(), arena));
    }
  }
  v1::UpdateBatch batch;
  for (int i = 0; i < 8; ++i) random.Update(batch.add_updates());
  const std::string batch_bytes = batch.SerializeAsString();
  absl::StatusOr<DecodedUpdateBatch> updates = DecodeUpdateBatch(batch_bytes);
  REQUIRE(updates.ok());
  for (const UpdateRef& u : updates->updates.items) {
    CHECK(WireHoldsStrings(u, batch_bytes));
    const std::string_view arena = u.memory.arena;
    CHECK(Within(u.set, arena));
    CHECK(Within(u.unset, arena));
    CHECK(Within(u.increment, arena));
    CHECK(Within(u.events, arena));
    for (const EventRef& e : u.events) CHECK(Within(e.properties, arena));
  }
}

TEST_CASE("Messages given twice merge as protobuf merges them", "[server][wire]") {
  // Two serialized messages back to back are one message: the later singular fields

  // win, repeated fields append, a map keeps the later entry of a key, and a message
  // field merges (a second list_value appends to the first).
  RandomMessages random(9);
  for (int i = 0; i < 500; ++i) {
    v1::Profile a, b;
    random.Profile(&a);
    random.Profile(&b);
    CheckReplayRequest(Field(1, a.SerializeAsString() + b.SerializeAsString()), 0);
    v1::ProfileUpdate u, w;
    random.Update(&u);
    random.Update(&w);
    CheckUpdateBatch(Field(2, u.SerializeAsString() + w.SerializeAsString()));
  }
  v1::Value first, second;
  first.mutable_list_value()->add_values("x");
  second.mutable_list_value()->add_values("y");
  const std::string entry =
      Field(1, "tags") + Field(2, first.SerializeAsString() + second.SerializeAsString());
  const std::string profile = Field(1, "k") + Field(2, entry);
  const std::string request = Field(1, profile);  // the decoded profiles borrow it
  CheckReplayRequest(request, 0);
  absl::StatusOr<DecodedReplayRequest> decoded = DecodeReplayRequest(request, 0);
  REQUIRE(decoded.ok());
  REQUIRE(decoded->converted.items.size() == 1);
  CHECK(ToProfileData(decoded->converted.items[0]).attributes ==
        NamedValues{{"tags", Value::List({"x", "y"})}});

  // A later entry of a name replaces the earlier one whole, even one without a kind.
  v1::Value one;
  one.set_int_value(1);
  const std::string twice = Field(1, "k") + Field(2, Field(1, "n") + Field(2, "")) +
                            Field(2, Field(1, "n") + Field(2, one.SerializeAsString()));
  CheckReplayRequest(Field(1, twice), 0);
  const std::string twice_reversed = Field(1, "k") +
                                     Field(2, Field(1, "n") + Field(2, one.SerializeAsString())) +
                                     Field(2, Field(1, "n") + Field(2, ""));
  CheckReplayRequest(Field(1, twice_reversed), 0);
}

TEST_CASE("Large maps decode as small ones do, duplicates included", "[server][wire]") {
  // Past the insertion sort's size: 3,000 attributes in no order, then the same names
  // again with other values (the later entries win), and 40 properties on an event.
  std::mt19937 rng(11);
  v1::Profile first, second;
  first.set_key("k");
  for (int i = 0; i < 3000; ++i) {
    const std::string name = "a" + std::to_string(rng() % 100000);
    (*first.mutable_attributes())[name].set_int_value(i);
    if (i % 3 == 0) (*second.mutable_attributes())[name].set_string_value("again");
  }
  v1::Event* e = first.add_events();
  e->set_type("t");
  for (int i = 0; i < 40; ++i) {
    (*e->mutable_properties())["p" + std::to_string(i * 7 % 40)].set_bool_value(true);
  }
  CheckReplayRequest(Field(1, first.SerializeAsString() + second.SerializeAsString()), 0);
  (*second.mutable_attributes())["a_without_kind"];
  CheckReplayRequest(Field(1, first.SerializeAsString() + second.SerializeAsString()), 0);
}

TEST_CASE("Map entries of every shape decode as the generated parser reads them",
          "[server][wire]") {
  // The decoder reads the shape serializers write (key, then a value of one member, each
  // with a one-byte length) on a fast path and everything else field by field; around
  // each edge of that shape both must agree with the generated parser.
  const std::string big(200, 'b');  // a two-byte length
  const std::string fixed = Varint(3 << 3 | 1) + std::string("\x00\x00\x00\x00\x00\x00\xf0\x3f", 8);
  const std::vector<std::string> values = {
      Field(1, "s"),
      Field(1, ""),
      Field(1, big),
      VarintField(2, 5),
      VarintField(2, 0),
      VarintField(2, 300),
      VarintField(2, static_cast<uint64_t>(-7)),                        // ten bytes
      Varint(2 << 3) + std::string("\x85\x00", 2),                      // 5, in two bytes
      Varint(2 << 3) + std::string(9, '\xff') + "\x7f",                 // ten bytes, all bits set
      Varint(2 << 3) + std::string(10, '\x80') + std::string(1, '\0'),  // eleven bytes: malformed
      Varint(2 << 3) + "\x85",                                          // cut inside the varint
      fixed,
      fixed.substr(0, 5),  // cut inside the double
      VarintField(4, 1),
      VarintField(4, 2),
      VarintField(4, 0),
      VarintField(5, 1'700'000'000'000),
      Field(6, Field(1, "x")),                  // a list
      "",                                       // no kind
      Field(2, "not a varint"),                 // int_value of the wrong wire type
      VarintField(1, 3),                        // string_value of the wrong wire type
      Field(1, "s") + VarintField(2, 5),        // two members: the last wins
      VarintField(2, 5) + Field(9, "unknown"),  // an unknown field after the member
      Field(9, "unknown") + Field(1, "s"),
  };
  for (const std::string& value : values) {
    const std::vector<std::string> entries = {
        Field(1, "n") + Field(2, value),
        Field(2, value) + Field(1, "n"),                                // value first
        Field(1, "m") + Field(1, "n") + Field(2, value),                // the key twice
        Field(1, "n") + Field(2, value) + Field(2, VarintField(4, 1)),  // the value twice
        Field(1, big) + Field(2, value),                                // a long key
        Field(1, "n") + Field(2, value) + Field(9, "unknown"),
        Field(2, value),  // no key: the empty name
        Field(1, "n"),    // no value: no kind
    };
    for (const std::string& entry : entries) {
      INFO("entry of " << entry.size() << " bytes");
      const std::string profile =
          Field(1, "k") + Field(2, entry) + Field(2, Field(1, "o") + Field(2, Field(1, "v")));
      CheckReplayRequest(Field(1, profile), 0);
      const std::string event = Field(1, "t") + Field(3, entry);
      CheckReplayRequest(Field(1, Field(1, "k") + Field(3, event)), 0);
      CheckUpdateBatch(Field(2, Field(1, "k") + Field(2, entry) + Field(4, entry)));
      // The entry's length or the value's cut short: the bytes are no message.
      CheckReplayRequest(Field(1, Field(1, "k") + Field(2, entry.substr(0, entry.size() - 1))), 0);
    }
  }
}

TEST_CASE("Events of every shape decode as the generated parser reads them", "[server][wire]") {
  // As for map entries: events in the shape serializers write (type, time, properties,
  // id, in that order, one-byte lengths) are read on a fast path, the rest field by field.
  const std::string big(200, 'b');
  const std::string type = Field(1, "page_view");
  const std::string time = VarintField(2, 1'700'000'000'000);
  const std::string property = Field(3, Field(1, "url") + Field(2, Field(1, "/a")));
  const std::string other = Field(3, Field(1, "category") + Field(2, VarintField(2, 7)));
  const std::string same_name = Field(3, Field(1, "url") + Field(2, Field(1, "/b")));
  const std::string value_first = Field(3, Field(2, Field(1, "/c")) + Field(1, "url"));
  const std::string kindless = Field(3, Field(1, "k"));
  const std::string id = Field(4, "id1");
  const std::vector<std::string> events = {
      type + time + property + other + id,
      type + time + other + property,  // properties out of order
      type + time + property + same_name,
      "",
      time + type + property,  // fields out of order
      type + type,
      type + time + time,
      type + time + property + id + property,
      type + time + property + id + id,
      type + time + value_first,
      type + time + property + kindless,
      type + time + Field(9, "unknown") + property,
      type + time + property + VarintField(9, 1),
      Field(1, big) + time + property,
      type + time + Field(3, Field(1, big) + Field(2, Field(1, "v"))),
      type + time + Field(4, big),
      type + Varint(2 << 3) + std::string(9, '\xff') + "\x01",   // a ten-byte time
      type + Varint(2 << 3) + "\x85",                            // the time cut short
      type + Varint(2 << 3) + std::string(10, '\x80') + "\x01",  // an eleven-byte time
      VarintField(1, 3) + time,                                  // type as a varint
      type + VarintField(3, 1),                                  // properties as a varint
      type + Field(2, "x"),                                      // time as bytes
  };
  for (const std::string& event : events) {
    INFO("event of " << event.size() << " bytes");
    // Alone, and after and before an event of the fast path's shape, whose properties
    // share the decoder's scratch with it.
    const std::string common = type + time + property + other;
    for (int field : {3, 5}) {  // Profile.events, ProfileUpdate.events
      const std::string alone = Field(field, event);
      const std::string between = Field(field, common) + alone + Field(field, common);
      for (const std::string& list : {alone, between}) {
        if (field == 3) CheckReplayRequest(Field(1, Field(1, "k") + list), 0);
        if (field == 5) CheckUpdateBatch(Field(2, Field(1, "k") + list));
      }
    }
    // Cut short: the bytes are no message.
    CheckReplayRequest(Field(1, Field(1, "k") + Field(3, event.substr(0, event.size() / 2))), 0);
  }
}

TEST_CASE("Unknown fields and fields of an unexpected wire type are skipped", "[server][wire]") {
  const std::string unknown = VarintField(15, 300) + Field(16, "skip me") +
                              Varint(17 << 3 | 1) + std::string(8, '\x01') +
                              Varint(18 << 3 | 5) + std::string(4, '\x02') +
                              Varint(19 << 3 | 3) + VarintField(1, 5) + Varint(19 << 3 | 4);
  v1::Profile p;
  p.set_key("k");
  (*p.mutable_attributes())["a"].set_int_value(3);
  v1::Event* e = p.add_events();
  e->set_type("t");
  e->set_time(1'700'000'000'000);
  (*e->mutable_properties())["x"].set_string_value("y");
  CheckReplayRequest(Field(1, p.SerializeAsString() + unknown) + unknown, 0);
  // A key and an event as varints.
  CheckReplayRequest(Field(1, unknown + p.SerializeAsString() + VarintField(1, 7)), 0);
  CheckReplayRequest(Field(1, p.SerializeAsString() + Varint(3 << 3 | 0) + Varint(1)), 0);
  const std::string event_with_unknown = Field(1, "t") + unknown + Field(3, Field(1, "x") + unknown);
  CheckReplayRequest(Field(1, Field(1, "k") + Field(3, event_with_unknown)), 0);
  CheckUpdateBatch(VarintField(1, 9) + unknown + Field(2, Field(1, "k") + unknown));
  // Key, events and set as varints: unknown fields to the generated parser too.
  CheckUpdateBatch(Field(2, Field(1, "k") + VarintField(5, 1) + VarintField(2, 1)));
}

TEST_CASE("Bytes that are not a message are rejected whole, at every cut", "[server][wire]") {
  RandomMessages random(10);
  for (int i = 0; i < 30; ++i) {
    const std::string replay = random.Replay().SerializeAsString();
    for (size_t cut = 0; cut < replay.size(); ++cut) CheckReplayRequest(replay.substr(0, cut), 0);
    const std::string batch = random.Batch().SerializeAsString();
    for (size_t cut = 0; cut < batch.size(); ++cut) CheckUpdateBatch(batch.substr(0, cut));
  }
  for (const std::string& bad : {std::string("\x0a\x05" "ab", 4), std::string("\x00", 1),
                                 std::string("\x0c", 1), std::string("\x0a\xff", 2),
                                 std::string("\x0f", 1)}) {
    CheckReplayRequest(bad, 0);
    CheckUpdateBatch(bad);
  }
  // A profile of 5 bytes with 2 left: the length read ends at byte 2.
  absl::StatusOr<DecodedReplayRequest> cut = DecodeReplayRequest(std::string("\x0a\x05" "ab", 4), 0);
  REQUIRE_FALSE(cut.ok());
  CHECK(cut.status().message() ==
        "the ReplayRequest message is not valid protobuf wire format (at byte 2)");
}

TEST_CASE("Strings are not checked for UTF-8 by the decoder but by the engine", "[server][wire]") {
  // The generated parser rejects the whole message; the decoder leaves it to the engine,
  // which rejects only the profile or update that holds the bad string.
  const std::string bad = "\xff\xfe";
  const std::string request = Field(1, Field(1, bad)) + Field(1, Field(1, "ok"));
  absl::StatusOr<DecodedReplayRequest> replay = DecodeReplayRequest(request, 0);
  REQUIRE(replay.ok());
  REQUIRE(replay->converted.items.size() == 2);
  CHECK(replay->converted.items[0].key == bad);
  const std::string update = Field(2, Field(1, bad));  // the decoded key views it
  absl::StatusOr<DecodedUpdateBatch> batch = DecodeUpdateBatch(update);
  REQUIRE(batch.ok());
  REQUIRE(batch->updates.items.size() == 1);
  CHECK(batch->updates.items[0].key == bad);
}

}  // namespace
}  // namespace server
}  // namespace segd
