#include "core/profile_codec.h"

#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace segd::codec {
namespace {

const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

TEST_CASE("ProfileCodec varints decode the same on the fast and the byte-wise path",
          "[core][codec]") {
  std::vector<uint64_t> values = {0,
                                  1,
                                  127,
                                  128,
                                  16383,
                                  16384,
                                  (uint64_t{1} << 56) - 1,
                                  uint64_t{1} << 56,
                                  std::numeric_limits<uint64_t>::max()};
  for (int shift = 0; shift < 64; ++shift) {
    values.push_back(uint64_t{1} << shift);
    values.push_back((uint64_t{1} << shift) - 1);
  }
  std::mt19937_64 rng(301);
  for (int i = 0; i < 1000; ++i) values.push_back(rng() >> (rng() % 64));
  for (uint64_t v : values) {
    for (size_t tail : {0, 1, 7, 8}) {  // bytes after the varint, up to the limit
      Buffer written;
      PutVarint(&written, v);
      std::string buf(written.view());
      const size_t len = buf.size();
      REQUIRE(static_cast<int>(len) == VarintLength(v));
      buf.append(tail, '\xff');
      uint64_t slow = 0, fast = 0;
      REQUIRE(GetVarint(Bytes(buf), &slow) == Bytes(buf) + len);
      REQUIRE(GetVarintFast(Bytes(buf), Bytes(buf) + buf.size(), &fast) == Bytes(buf) + len);
      REQUIRE(slow == v);
      REQUIRE(fast == v);
    }
  }
}

TEST_CASE("ProfileCodec event heads decode to their time, type, body and end", "[core][codec]") {
  // NextEvent's time code takes GetVarintFast's word-at-a-time path when 8 bytes are
  // readable. Heads of every length, with body bytes and a varying slack after them up
  // to the limit, so that both paths and the bounds between them are taken.
  std::mt19937_64 rng(302);
  const auto draw = [&](int max_bits) { return rng() >> (64 - 1 - rng() % max_bits); };
  for (int i = 0; i < 20000; ++i) {
    const uint64_t time_code = draw(56);
    const uint64_t type_code = draw(40);
    const uint64_t length = rng() % 4 == 0 ? draw(14) : rng() % 40;
    const int64_t prev = rng() % 2 == 0 ? -1 : static_cast<int64_t>(rng() % 1000000);
    Buffer written;
    PutVarint(&written, time_code);
    PutVarint(&written, type_code);
    PutVarint(&written, length);
    std::string buf(written.view());
    const size_t head = buf.size();
    buf.append(length, '\x80');                           // the body: continuation bytes
    buf.append(static_cast<size_t>(rng() % 10), '\x7f');  // slack before the limit
    EventHead h;
    const uint8_t* end = NextEvent(Bytes(buf), Bytes(buf) + buf.size(), prev, &h);
    INFO("time code " << time_code << ", type code " << type_code << ", length " << length
                      << ", head " << head << " bytes of " << buf.size());
    REQUIRE(end == Bytes(buf) + head + length);
    REQUIRE(h.end == end);
    REQUIRE(h.body == Bytes(buf) + head);
    REQUIRE(h.rest == Bytes(buf) + VarintLength(time_code));
    REQUIRE(h.time ==
            (prev < 0 ? static_cast<int64_t>(time_code) : prev + static_cast<int64_t>(time_code)));
    REQUIRE(h.type == static_cast<uint32_t>(type_code >> 1));
    REQUIRE(h.has_id == ((type_code & 1) != 0));
  }
}

TEST_CASE("ProfileCodec stores floats bit for bit, short decimals compactly", "[core][codec]") {
  ValueDictionary dict;
  Interner names;
  const std::vector<double> floats = {0.0,
                                      -0.0,
                                      1.0,
                                      -1.0,
                                      19.99,
                                      0.1,
                                      0.001,
                                      123.456,
                                      -2.5,
                                      1e15,
                                      1e300,
                                      -1e-300,
                                      5e-324,
                                      3.141592653589793,
                                      std::numeric_limits<double>::max()};
  for (double d : floats) {
    Buffer written;
    AppendField(3, Value::Float(d), &dict, &written);
    const std::string out(written.view());
    Field f;
    REQUIRE(NextField(Bytes(out), &f) == Bytes(out) + out.size());
    REQUIRE(f.name == 3);
    const Value back = FieldValue(f, dict.strings());
    REQUIRE(back.kind() == ValueKind::kFloat);
    REQUIRE(std::bit_cast<uint64_t>(back.float_value()) == std::bit_cast<uint64_t>(d));
    REQUIRE(ScalarVal(f, dict.strings()).f == d);
  }
  Buffer cents;
  AppendField(3, Value::Float(19.99), &dict, &cents);
  REQUIRE(cents.size() == 3);  // head, 2-byte varint
}

TEST_CASE("ProfileCodec stores typed decimals compactly and computed floats raw", "[core][codec]") {
  // The code a float gets is the shortest n / 10^e (e in 0..3) that gives it back bit for
  // bit, as trying each e in turn finds it.
  constexpr double kScale[] = {1.0, 10.0, 100.0, 1000.0};
  ValueDictionary dict;
  const auto check = [&](double d) {
    INFO(d);
    Buffer out;
    AppendField(3, Value::Float(d), &dict, &out);
    const std::string bytes(out.view());
    Field f;
    REQUIRE(NextField(Bytes(bytes), &f) == Bytes(bytes) + bytes.size());
    REQUIRE(std::bit_cast<uint64_t>(FieldValue(f, dict.strings()).float_value()) ==
            std::bit_cast<uint64_t>(d));
    const std::optional<uint64_t> want = DecimalCodeByTrial(d);
    REQUIRE(f.kind == (want ? FieldKind::kDecimal : FieldKind::kFloat));
    if (want) {
      uint64_t code = 0;
      GetVarint(f.value, &code);
      REQUIRE(code == *want);
    }
    return f.kind;
  };
  std::mt19937_64 rng(5);
  for (int i = 0; i < 20'000; ++i) {
    // n / 10^e with n up to 2^47 (the code's limit, and past where v * 1000 is exact), and
    // around it; sums that are not what they look like (0.1 + 0.2); computed floats.
    const auto n = static_cast<int64_t>(rng() >> (17 + rng() % 40)) * (rng() % 2 ? 1 : -1);
    const double typed = static_cast<double>(n) / kScale[rng() % 4];
    const FieldKind kind = check(typed);
    if (std::abs(n) < (int64_t{1} << 40)) REQUIRE(kind == FieldKind::kDecimal);
    check(std::nextafter(typed, 0.0));
    check(typed + static_cast<double>(rng() % 10) / 10.0 + 0.2);
    check(std::ldexp(static_cast<double>(rng() >> 11), -53) * 500.0);
  }
  for (double d : {0.0, -0.0, 0.1 + 0.2, 1e-300, 0x1p40 / 1000, 0x1p47, 0x1p48, -0x1p48}) check(d);
}

TEST_CASE("ProfileCodec prefixes a section with its length however long it grows",
          "[core][codec]") {
  for (size_t len : {0, 1, 127, 128, 300, 16383, 16384, 70000}) {
    Buffer out;
    PutBytes(&out, "ab");  // what comes before the section stays
    const size_t mark = BeginLength(&out);
    std::string section;
    for (size_t i = 0; i < len; ++i) section.push_back(static_cast<char>('a' + i % 26));
    // In pieces, so the buffer grows (and moves) while the section is open.
    for (size_t i = 0; i < len; i += 1000) {
      PutBytes(&out, std::string_view(section).substr(i, 1000));
    }
    EndLength(mark, &out);
    const std::string bytes(out.view());
    REQUIRE(bytes.substr(0, 2) == "ab");
    uint64_t n = 0;
    const uint8_t* p = GetVarint(Bytes(bytes) + 2, &n);
    REQUIRE(n == len);
    REQUIRE(p - Bytes(bytes) == 2 + VarintLength(len));
    REQUIRE(bytes.substr(2 + VarintLength(len)) == section);
  }
}

TEST_CASE("ProfileCodec interns a value once it is seen twice under a name", "[core][codec]") {
  ValueDictionary dict;
  REQUIRE_FALSE(dict.IdFor(1, "DK").has_value());  // first sighting: inline
  const std::optional<uint32_t> id = dict.IdFor(1, "DK");
  REQUIRE(id.has_value());
  REQUIRE(dict.strings().Get(*id) == "DK");
  REQUIRE(dict.IdFor(2, "DK") == id);             // interned values serve every name
  REQUIRE_FALSE(dict.IdFor(1, "x").has_value());  // too short to gain from an id
  REQUIRE_FALSE(dict.IdFor(1, "x").has_value());
  for (int i = 0; i < 1000; ++i) {  // values seen once stay out
    REQUIRE_FALSE(dict.IdFor(1, "unique" + std::to_string(i)).has_value());
  }
  REQUIRE(dict.strings().size() == 1);
}

TEST_CASE("ProfileCodec interns at most kMaxValuesPerName values of one name", "[core][codec]") {
  ValueDictionary dict;
  const auto value = [](uint32_t i) { return "v" + std::to_string(i); };
  // Each value is interned by its second sighting, or its third when the table of
  // sightings grew (and forgot) in between.
  for (uint32_t i = 0; i < ValueDictionary::kMaxValuesPerName; ++i) {
    REQUIRE_FALSE(dict.IdFor(1, value(i)).has_value());
    if (!dict.IdFor(1, value(i)).has_value()) REQUIRE(dict.IdFor(1, value(i)).has_value());
  }
  // Past the cap a value of the name stays inline however often it comes; the interned
  // ones keep their ids, and another name still interns.
  for (int sighting = 0; sighting < 3; ++sighting) {
    REQUIRE_FALSE(dict.IdFor(1, "one more").has_value());
  }
  REQUIRE(dict.IdFor(1, value(7)) == dict.strings().Find(value(7)));
  REQUIRE_FALSE(dict.IdFor(2, "other").has_value());
  REQUIRE(dict.IdFor(2, "other").has_value());
  REQUIRE(dict.strings().size() == ValueDictionary::kMaxValuesPerName + 1);
}

TEST_CASE("ProfileCodec gives each value one id, whichever names look it up and in what order",
          "[core][codec]") {
  // Names with a few values and with many (more than a name's recent values hold), short
  // and long, looked up in a random order: once interned, a value has the id the table
  // gives it under every name.
  ValueDictionary dict;
  std::mt19937_64 rng(11);
  const auto value = [](uint64_t i) {
    return i % 3 == 0 ? "value-past-sixteen-bytes-" + std::to_string(i) : "v" + std::to_string(i);
  };
  for (int i = 0; i < 20'000; ++i) {
    const auto name = static_cast<uint32_t>(rng() % 4);
    const uint64_t values = name == 0 ? 5 : name == 1 ? 40 : 500;
    const std::string v = value(rng() % values);
    const std::optional<uint32_t> id = dict.IdFor(name, v);
    if (id.has_value()) {
      REQUIRE(dict.strings().Get(*id) == v);
      REQUIRE(dict.strings().Find(v) == id);
    }
  }
  // Every value of the small names came often enough to be interned.
  for (uint64_t i = 0; i < 40; ++i) {
    INFO(value(i));
    const std::optional<uint32_t> id = dict.strings().Find(value(i));
    REQUIRE(id.has_value());
    REQUIRE(dict.IdFor(1, value(i)) == id);
    REQUIRE(dict.IdFor(3, value(i)) == id);
  }
}

TEST_CASE("ProfileCodec stops looking up the values of a name that do not repeat",
          "[core][codec]") {
  ValueDictionary dict;
  REQUIRE_FALSE(dict.IdFor(1, "DK").has_value());
  const std::optional<uint32_t> dk = dict.IdFor(1, "DK");
  REQUIRE(dk.has_value());
  // A sample of values seen once (emails, order ids), the first two lookups above in it:
  // the name's next values are stored inline without a lookup, interned or not.
  for (uint32_t i = 2; i < ValueDictionary::kSample; ++i) {
    REQUIRE_FALSE(dict.IdFor(1, "unique" + std::to_string(i)).has_value());
  }
  REQUIRE_FALSE(dict.IdFor(1, "DK").has_value());
  REQUIRE(dict.IdFor(2, "DK") == dk);  // other names are looked up as before
  for (uint32_t i = 1; i < ValueDictionary::kSkipped - 1; ++i) {
    REQUIRE_FALSE(dict.IdFor(1, "skipped").has_value());
  }
  REQUIRE_FALSE(dict.IdFor(1, "skipped").has_value());  // the last skipped
  // Sampled again: values that repeat are found and interned, and the name stays
  // looked up while a sample's repeats are 1 in kMinRepeatShare or more.
  REQUIRE(dict.IdFor(1, "DK") == dk);
  REQUIRE_FALSE(dict.IdFor(1, "SE").has_value());
  const std::optional<uint32_t> se = dict.IdFor(1, "SE");
  REQUIRE(se.has_value());
  for (uint32_t i = 3; i < 2 * ValueDictionary::kSample; ++i) {
    const bool repeat = i % (ValueDictionary::kMinRepeatShare / 2) == 0;
    const std::optional<uint32_t> id =
        dict.IdFor(1, repeat ? std::string("DK") : "once" + std::to_string(i));
    REQUIRE(id == (repeat ? dk : std::nullopt));
  }
}

}  // namespace
}  // namespace segd::codec
