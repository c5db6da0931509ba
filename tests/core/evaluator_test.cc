// The semantics of SPEC §3, one bullet at a time, as a client sees them: rules
// evaluated against profiles stored in an engine.
#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "tests/core/engine_fixture.h"

namespace segd::testing {
namespace {

class SemanticsFixture : public EngineFixture {
 public:
  SemanticsFixture() {
    Set("p", {{"age", Value::Int(42)},
              {"ltv", Value::Float(12.5)},
              {"name", Value::String("Zoë")},
              {"country", Value::String("DK")},
              {"vip", Value::Bool(true)},
              {"off", Value::Bool(false)},
              {"flag_text", Value::String("true")},
              {"signup_at", Value::Time(kT0 - 3 * kDay)},
              {"tags", Value::List({"a", "b"})},
              {"tags2", Value::List({"a", "b"})},
              {"tags3", Value::List({"b", "a"})},
              {"big", Value::Int(INT64_MAX)},
              {"zero", Value::Int(0)}});
  }
};

TEST_CASE_METHOD(SemanticsFixture,
                 "A comparison with a missing operand is false for every operator",
                 "[core][semantics]") {
  for (const char* op : {"=", "!=", "<", "<=", ">", ">="}) {
    INFO(op);
    CHECK_FALSE(Holds("p", std::string("nope ") + op + " 1"));
    CHECK_FALSE(Holds("p", std::string("1 ") + op + " nope"));
    CHECK_FALSE(Holds("p", std::string("nope ") + op + " nope"));
  }
  CHECK(Holds("p", "not (nope = 1)"));
  CHECK_FALSE(Holds("p", "age / zero = 1"));  // division by zero is missing
  CHECK_FALSE(Holds("p", "age / zero != 1"));
}

TEST_CASE_METHOD(SemanticsFixture, "Only the bool true is true in boolean context",
                 "[core][semantics]") {
  CHECK(Holds("p", "vip"));
  CHECK_FALSE(Holds("p", "off"));
  CHECK_FALSE(Holds("p", "flag_text"));  // the string "true" is not true
  CHECK_FALSE(Holds("p", "nope"));
  CHECK(Holds("p", "not nope"));
  CHECK(Holds("p", "not flag_text"));
  CHECK(Holds("p", "vip and not off"));
  CHECK(Holds("p", "off or vip"));
  CHECK_FALSE(Holds("p", "off or nope"));
}

TEST_CASE_METHOD(SemanticsFixture, "Numbers compare numerically and exactly across kinds",
                 "[core][semantics]") {
  CHECK(Holds("p", "age = 42.0"));
  CHECK(Holds("p", "age < 42.5"));
  CHECK(Holds("p", "ltv > 12"));
  CHECK(Holds("p", "ltv = 12.5"));
  CHECK(Holds("p", "signup_at = " + std::to_string(kT0 - 3 * kDay)));  // a time is an int
  // 2^53 + 1 is not equal to the nearest double, 2^53.
  Set("q", {{"n", Value::Int(9007199254740993)}});
  CHECK_FALSE(Holds("q", "n = 9007199254740992.0"));
  CHECK(Holds("q", "n > 9007199254740992.0"));
  CHECK(Holds("p", "big < 9223372036854775808.0"));
  CHECK(Holds("p", "big > 9223372036854774784.0"));
}

TEST_CASE_METHOD(SemanticsFixture, "Strings compare bytewise with all six operators",
                 "[core][semantics]") {
  CHECK(Holds("p", "country = \"DK\""));
  CHECK(Holds("p", "country != \"SE\""));
  CHECK(Holds("p", "country < \"SE\""));
  CHECK(Holds("p", "country <= \"DK\""));
  CHECK(Holds("p", "country > \"DE\""));
  CHECK(Holds("p", "country >= \"DK\""));
  CHECK(Holds("p", "\"a\" < \"b\""));
  CHECK(Holds("p", "\"Z\" < \"a\""));        // bytewise, not case-folded
  CHECK(Holds("p", "\"z\" < \"\\u00e9\""));  // é (0xC3 0xA9) sorts after every ASCII byte
  CHECK(Holds("p", "name = \"Zo\\u00eb\""));
}

TEST_CASE_METHOD(SemanticsFixture,
                 "Bools and lists compare only with = and !=", "[core][semantics]") {
  CHECK(Holds("p", "vip = true"));
  CHECK(Holds("p", "vip != off"));
  CHECK_FALSE(Holds("p", "off < vip"));
  CHECK_FALSE(Holds("p", "vip >= true"));
  CHECK(Holds("p", "tags = tags2"));
  CHECK(Holds("p", "tags != tags3"));  // element by element, in order
  CHECK_FALSE(Holds("p", "tags = tags3"));
  CHECK_FALSE(Holds("p", "tags < tags3"));
  CHECK_FALSE(Holds("p", "tags <= tags2"));
}

TEST_CASE_METHOD(SemanticsFixture, "Comparisons of mismatched kinds are false, != too",
                 "[core][semantics]") {
  Set("q", {{"s", Value::String("1")}, {"n", Value::Int(1)}});
  CHECK_FALSE(Holds("q", "s = n"));
  CHECK_FALSE(Holds("q", "s != n"));
  CHECK_FALSE(Holds("p", "vip = 1"));
  CHECK_FALSE(Holds("p", "vip != 1"));
  CHECK_FALSE(Holds("p", "tags != \"a\""));
}

TEST_CASE_METHOD(SemanticsFixture, "in and not in", "[core][semantics]") {
  CHECK(Holds("p", "country in [\"SE\", \"DK\"]"));
  CHECK_FALSE(Holds("p", "country in [\"SE\", \"NO\"]"));
  CHECK(Holds("p", "age in [1, 42.0, -3]"));
  CHECK(Holds("p", "country not in [\"SE\"]"));
  CHECK_FALSE(Holds("p", "nope in [1, 2]"));
  CHECK(Holds("p", "nope not in [1, 2]"));  // exactly not (x in [...])
  CHECK(Holds("p", "age in []") == false);
  CHECK(Holds("p", "signup_at in [" + std::to_string(kT0 - 3 * kDay) + "]"));
}

TEST_CASE_METHOD(SemanticsFixture, "contains, starts_with, ends_with and matches",
                 "[core][semantics]") {
  CHECK(Holds("p", "tags contains \"a\""));
  CHECK_FALSE(Holds("p", "tags contains \"c\""));
  CHECK(Holds("p", "name contains \"oë\""));
  CHECK(Holds("p", "name contains \"\""));
  CHECK_FALSE(Holds("p", "age contains \"4\""));
  CHECK_FALSE(Holds("p", "tags contains 1"));
  CHECK(Holds("p", "country starts_with \"D\""));
  CHECK(Holds("p", "country ends_with \"K\""));
  CHECK_FALSE(Holds("p", "tags starts_with \"a\""));  // strings only
  CHECK_FALSE(Holds("p", "age starts_with \"4\""));
  CHECK(Holds("p", "name matches \"o.$\""));  // unanchored search, UTF-8 aware
  CHECK(Holds("p", "country matches \"^D\""));
  CHECK_FALSE(Holds("p", "age matches \"4\""));
}

TEST_CASE_METHOD(SemanticsFixture, "Arithmetic kinds, overflow and division", "[core][semantics]") {
  CHECK(Holds("p", "age + 1 = 43"));
  CHECK(Holds("p", "age * 2 - 4 = 80"));
  CHECK(Holds("p", "age + 0.5 = 42.5"));
  CHECK(Holds("p", "age / 4 = 10.5"));  // / always gives a float
  CHECK(Holds("p", "age / 2 = 21"));
  CHECK_FALSE(Holds("p", "big + 1 > 0"));  // int64 overflow is missing
  CHECK_FALSE(Holds("p", "big + 1 <= 0"));
  CHECK(Holds("p", "big + 1.0 > 0"));
  CHECK_FALSE(Holds("p", "-(big) - 2 < 0"));
  CHECK_FALSE(Holds("p", "age / 0 = 0"));
  CHECK_FALSE(Holds("p", "age / 0.0 != 0"));
  CHECK_FALSE(Holds("p", "country + 1 = 1"));
  CHECK_FALSE(Holds("p", "nope + 1 = 1"));
  CHECK(Holds("p", "-age = -42"));
  CHECK(Holds("p", "2 + 3 * 4 = 14"));
  CHECK(Holds("p", "(2 + 3) * 4 = 20"));
  CHECK(Holds("p", "10 - 3 - 2 = 5"));  // left to right
  CHECK(Holds("p", "100 / 10 / 5 = 2"));
  CHECK(Holds("p", "2 * 3 - 4 / 2 + 1 = 5"));
  CHECK_FALSE(Holds("p", "big + 1 - 1 = big"));  // overflow on the way is missing
  CHECK(Holds("p", "big - 1 + 1 = big"));
  CHECK(Holds("p", "signup_at + 2d + 2d > now()"));
  CHECK_FALSE(Holds("p", "signup_at + 1d + 1d > now()"));
  CHECK(Holds("p", "signup_at < 1d + 1d + now()"));
}

TEST_CASE_METHOD(SemanticsFixture, "has, now and durations", "[core][semantics]") {
  CHECK(Holds("p", "has(age)"));
  CHECK_FALSE(Holds("p", "has(nope)"));
  CHECK(Holds("p", "has(off)"));  // exists, even though false
  CHECK(Holds("p", "now() = " + std::to_string(kT0)));
  CHECK(Holds("p", "1d = 86400000"));
  CHECK(Holds("p", "2w = 14 * 1d"));
  CHECK(Holds("p", "1h = 60m and 1m = 60s and 1s = 1000ms"));
  CHECK(Holds("p", "signup_at > now() - 7d"));
  CHECK_FALSE(Holds("p", "signup_at > now() - 2d"));
  CHECK(Holds("p", "now() - 3d = signup_at"));
  CHECK(Holds("p", "1d + now() > signup_at"));
}

TEST_CASE_METHOD(EngineFixture, "Event selectors: count, did, first, last and where",
                 "[core][semantics]") {
  ProfileUpdate u;
  u.key = "p";
  u.events = {MakeEvent("view", kT0 - 3 * kHour, {{"url", Value::String("/shoes/1")}}),
              MakeEvent("view", kT0 - 2 * kHour, {{"url", Value::String("/bags/1")}}),
              MakeEvent("buy", kT0 - 1 * kHour, {{"amount", Value::Float(10)}}),
              MakeEvent("view", kT0 - 30 * kMinute, {{"url", Value::String("/shoes/2")}})};
  Apply(u);
  CHECK(Holds("p", "count(view) = 3"));
  CHECK(Holds("p", "count(*) = 4"));
  CHECK(Holds("p", "count(\"view\") = 3"));
  CHECK(Holds("p", "count(view where url starts_with \"/shoes\") = 2"));
  CHECK(Holds("p", "count(view where has(url)) = 3"));
  CHECK(Holds("p", "count(view where has(amount)) = 0"));
  CHECK(Holds("p", "count(view within 1h) = 1"));
  CHECK(Holds("p", "did(buy)"));
  CHECK_FALSE(Holds("p", "did(buy within 1h)"));  // strict: time > now - 1h
  CHECK(Holds("p", "did(buy within 61m)"));
  CHECK_FALSE(Holds("p", "did(nothing)"));
  CHECK(Holds("p", "first(view) = " + std::to_string(kT0 - 3 * kHour)));
  CHECK(Holds("p", "last(view) = " + std::to_string(kT0 - 30 * kMinute)));
  CHECK(Holds("p", "last(view where url = \"/bags/1\") = " + std::to_string(kT0 - 2 * kHour)));
  CHECK_FALSE(Holds("p", "first(nothing) > 0"));
  CHECK_FALSE(Holds("p", "first(nothing) <= 0"));
  CHECK(Holds("p", "last(view) > now() - 1h"));
}

TEST_CASE_METHOD(EngineFixture, "Future-dated events count in every window", "[core][semantics]") {
  AddEvent("p", MakeEvent("view", kT0 + kHour));
  CHECK(Holds("p", "did(view within 1ms)"));
  CHECK(Holds("p", "count(view within 1d) = 1"));
}

TEST_CASE_METHOD(EngineFixture, "sum, avg, min, max and count_distinct", "[core][semantics]") {
  ProfileUpdate u;
  u.key = "p";
  u.events = {
      MakeEvent("buy", kT0 - 5, {{"amount", Value::Int(10)}, {"sku", Value::String("a")}}),
      MakeEvent("buy", kT0 - 4, {{"amount", Value::Int(20)}, {"sku", Value::String("b")}}),
      MakeEvent("buy", kT0 - 3, {{"amount", Value::String("x")}, {"sku", Value::String("a")}}),
      MakeEvent("buy", kT0 - 2, {{"sku", Value::Int(1)}}),
      MakeEvent("buy", kT0 - 1, {{"sku", Value::Float(1.0)}}),
      MakeEvent("tip", kT0 - 1, {{"amount", Value::Float(2.5)}, {"n", Value::Int(INT64_MAX)}}),
      MakeEvent("tip", kT0, {{"amount", Value::Int(5)}, {"n", Value::Int(1)}})};
  Apply(u);
  CHECK(Holds("p", "sum(buy.amount) = 30"));  // ints stay int, non-numbers skipped
  CHECK(Holds("p", "sum(buy.amount) + 0 = 30"));
  CHECK(Holds("p", "sum(buy.amount) / 1 = 30.0"));
  CHECK(Holds("p", "sum(tip.amount) = 7.5"));    // with a float: a float
  CHECK(Holds("p", "sum(nothing.amount) = 0"));  // 0 if none
  CHECK_FALSE(Holds("p", "sum(tip.n) > 0"));     // int overflow: missing
  CHECK_FALSE(Holds("p", "sum(tip.n) <= 0"));
  CHECK(Holds("p", "avg(buy.amount) = 15.0"));
  CHECK_FALSE(Holds("p", "avg(nothing.amount) >= 0"));  // missing if none
  CHECK(Holds("p", "min(buy.amount) = 10"));
  CHECK(Holds("p", "max(buy.amount where sku = \"a\") = 10"));
  CHECK(Holds("p", "min(tip.amount) = 2.5"));
  CHECK(Holds("p", "max(tip.amount) = 5"));
  CHECK_FALSE(Holds("p", "min(nothing.amount) >= 0"));
  CHECK(Holds("p", "count_distinct(buy.sku) = 3"));     // "a", "b", and 1 = 1.0 once
  CHECK(Holds("p", "count_distinct(buy.amount) = 3"));  // 10, 20, "x"
  CHECK(Holds("p", "count_distinct(buy.sku within 4ms) = 2"));
  CHECK(Holds("p", "count_distinct(nothing.sku) = 0"));
}

TEST_CASE_METHOD(EngineFixture, "sequence needs strictly increasing history positions",
                 "[core][semantics]") {
  ProfileUpdate u;
  u.key = "p";
  // Same time: history order is arrival order, so view comes before cart.
  u.events = {MakeEvent("view", kT0 - 10 * kDay), MakeEvent("cart", kT0 - 10 * kDay),
              MakeEvent("view", kT0 - 1 * kDay)};
  Apply(u);
  CHECK(Holds("p", "sequence(view, cart)"));
  CHECK_FALSE(Holds("p", "sequence(cart, view, cart)"));
  CHECK(Holds("p", "sequence(cart, view)"));
  CHECK(Holds("p", "sequence(view, view)"));
  CHECK_FALSE(Holds("p", "sequence(view, view, view)"));  // one event matches one step
  CHECK(Holds("p", "sequence(*, *, *)"));
  CHECK_FALSE(Holds("p", "sequence(view, cart within 5d)"));
  CHECK(Holds("p", "sequence(view, cart within 11d)"));
  CHECK(Holds("p", "sequence(view)"));
  // A late event placed before an existing one in history order.
  AddEvent("p", MakeEvent("pay", kT0 - 20 * kDay));
  CHECK(Holds("p", "sequence(pay, view, cart)"));
  CHECK_FALSE(Holds("p", "sequence(view, pay)"));
}

TEST_CASE_METHOD(EngineFixture, "Events with the same time keep arrival order",
                 "[core][semantics]") {
  AddEvent("p", MakeEvent("b", kT0 - kHour));
  AddEvent("p", MakeEvent("a", kT0 - kHour));
  CHECK(Holds("p", "sequence(b, a)"));
  CHECK_FALSE(Holds("p", "sequence(a, b)"));
}

TEST_CASE_METHOD(EngineFixture, "Retention drops events from every rule as time passes",
                 "[core][semantics]") {
  AddEvent("p", MakeEvent("view", kT0 - 89 * kDay));
  CHECK(Holds("p", "did(view)"));
  SetTime(kT0 + kDay - 1);
  CHECK(Holds("p", "did(view)"));
  SetTime(kT0 + kDay);  // time <= now - 90d: gone
  CHECK_FALSE(Holds("p", "did(view)"));
  CHECK(Holds("p", "count(*) = 0"));
  CHECK(engine.GetProfile("p")->events.empty());
}

TEST_CASE_METHOD(EngineFixture, "Duplicate event ids of one type are ignored",
                 "[core][semantics]") {
  ProfileUpdate u;
  u.key = "p";
  u.events = {MakeEvent("buy", kT0 - 3, {}, "o1"), MakeEvent("buy", kT0 - 2, {}, "o1"),
              MakeEvent("ship", kT0 - 1, {}, "o1"), MakeEvent("buy", kT0, {}, "")};
  Apply(u);
  AddEvent("p", MakeEvent("buy", kT0, {}, "o1"));
  CHECK(Holds("p", "count(buy) = 2"));
  CHECK(Holds("p", "count(ship) = 1"));
}

TEST_CASE_METHOD(EngineFixture, "in_segment follows the referenced segment", "[core][semantics]") {
  Put("adult", "age >= 18");
  Put("adult_dk", "in_segment(\"adult\") and country = \"DK\"");
  Set("p", {{"age", Value::Int(30)}, {"country", Value::String("DK")}});
  CHECK(IsMember("p", "adult_dk"));
  CHECK(Holds("p", "in_segment(\"adult\")"));
  Set("p", {{"age", Value::Int(10)}});
  CHECK_FALSE(IsMember("p", "adult_dk"));
  CHECK_FALSE(Holds("p", "in_segment(\"adult\")"));
}

TEST_CASE_METHOD(EngineFixture, "Empty profiles are evaluated too", "[core][semantics]") {
  Put("no_email", "not has(email)");
  Put("has_email", "has(email)");
  Apply(KeyOnly("empty"));
  CHECK(IsMember("empty", "no_email"));
  CHECK_FALSE(IsMember("empty", "has_email"));
  CHECK(engine.Count("not has(email)")->matched == 1);
}

}  // namespace
}  // namespace segd::testing

namespace segd::testing {
namespace {

TEST_CASE_METHOD(EngineFixture, "count_distinct counts many distinct values exactly",
                 "[core][semantics]") {
  ProfileUpdate u;
  u.key = "p";
  for (int i = 0; i < 40; ++i) {  // 20 distinct strings, 10 distinct numbers, 1 = 1.0
    u.events.push_back(
        MakeEvent("e", kT0 - 100 + i, {{"v", Value::String("s" + std::to_string(i % 20))}}));
    u.events.push_back(MakeEvent("e", kT0 - 100 + i, {{"v", Value::Int(i % 10)}}));
  }
  u.events.push_back(MakeEvent("e", kT0, {{"v", Value::Float(1.0)}}));
  Apply(u);
  CHECK(Holds("p", "count_distinct(e.v) = 30"));
}

TEST_CASE("Counts compared with a number decide and turn as the whole count would",
          "[core][semantics]") {
  // count and count_distinct compared with a number literal stop counting where the
  // comparison can no longer change, and are due again when that can first happen.
  // Checked against counts taken here over a long history: every operator, the count on
  // either side, limits around the counts, and the millisecond before and at each
  // event's leaving a window. One segment an engine, so that no other segment's timer
  // re-evaluates it at a moment its own would have missed.
  std::mt19937_64 rng(17);
  ProfileUpdate u;
  u.key = "p";
  std::vector<std::pair<int64_t, Value>> views;  // time, v
  for (int i = 0; i < 60; ++i) {
    const int64_t t = kT0 - static_cast<int64_t>(rng() % (2 * kHour));
    const Value v = rng() % 4 == 0
                        ? Value::Int(static_cast<int64_t>(rng() % 3))
                        : Value::String(std::string(1, static_cast<char>('a' + rng() % 5)));
    if (rng() % 5 == 0) {
      u.events.push_back(MakeEvent("buy", t, {{"v", v}}));
    } else {
      u.events.push_back(MakeEvent("view", t, {{"v", v}}));
      views.emplace_back(t, v);
    }
  }
  struct Form {
    std::string text;
    int64_t within;
    bool only_a;    // where v = "a"
    bool distinct;  // count_distinct of v
  };
  const std::vector<Form> forms = {
      {"count(view within 1h)", kHour, false, false},
      {"count(view where v = \"a\" within 90m)", 90 * kMinute, true, false},
      {"count_distinct(view.v within 1h)", kHour, false, true}};
  const auto count_at = [&](const Form& form, int64_t now) {
    std::vector<Value> seen;
    for (const auto& [t, v] : views) {
      if (t <= now - form.within) continue;
      if (form.only_a && !(v.kind() == ValueKind::kString && v.string_value() == "a")) continue;
      if (form.distinct && std::find(seen.begin(), seen.end(), v) != seen.end()) continue;
      seen.push_back(v);
    }
    return static_cast<double>(seen.size());
  };
  const auto holds = [](double a, const std::string& op, double b) {
    if (op == "=") return a == b;
    if (op == "!=") return a != b;
    if (op == "<") return a < b;
    if (op == "<=") return a <= b;
    if (op == ">") return a > b;
    return a >= b;
  };
  std::set<int64_t> moments = {kT0};  // each view's last millisecond in a window, first out
  for (const auto& [t, v] : views) {
    for (const Form& form : forms) {
      for (int64_t m : {t + form.within - 1, t + form.within}) {
        if (m > kT0) moments.insert(m);
      }
    }
  }
  for (const Form& form : forms) {
    for (const std::string op : {"=", "!=", "<", "<=", ">", ">="}) {
      for (const std::string limit : {"-1", "0", "1", "2", "2.5", "3", "5", "8", "40"}) {
        for (bool count_left : {true, false}) {
          const std::string rule =
              count_left ? form.text + " " + op + " " + limit : limit + " " + op + " " + form.text;
          EngineFixture f;
          f.Put("s", rule);
          f.Apply(u);
          for (int64_t now : moments) {
            if (now > kT0) REQUIRE(f.engine.SetTime(now).ok());
            const double c = count_at(form, now);
            INFO("at T0 + " << now - kT0 << " ms: " << rule << ", the count " << c);
            CHECK(f.IsMember("p", "s") ==
                  (count_left ? holds(c, op, std::stod(limit)) : holds(std::stod(limit), op, c)));
          }
        }
      }
    }
  }
}

TEST_CASE_METHOD(EngineFixture,
                 "String predicates over stored values hold for every profile of a segment",
                 "[core][semantics]") {
  // The same few urls on many profiles: the store keeps them by id after the first
  // repeats, and a segment's rule tests each id once and remembers the result. Every
  // membership must still be that of the predicate on the url itself.
  Put("shoes", "did(view where url starts_with \"/shoes\")");
  Put("ends_1", "did(view where url ends_with \"/1\")");
  Put("bags", "did(view where url matches \"^/bags/[0-9]+$\")");
  Put("oes_2", "did(view where url contains \"oes/2\")");
  Put("attr", "home starts_with \"/shoes\"");
  const std::vector<std::string> urls = {"/shoes/1", "/shoes/2", "/bags/1", "/bags/x",
                                         "/hats/1", "/shoes/22", "/bags/2", "/shoes"};
  for (int n = 0; n < 64; ++n) {
    const std::string& url = urls[(n * 5 + n / 8) % urls.size()];
    const std::string key = "p" + std::to_string(n);
    ProfileUpdate u = KeyOnly(key);
    u.set = {{"home", Value::String(url)}};
    u.events = {MakeEvent("view", kT0 - kHour, {{"url", Value::String(url)}})};
    Apply(u);
    INFO(key << " url " << url);
    CHECK(IsMember(key, "shoes") == url.starts_with("/shoes"));
    CHECK(IsMember(key, "ends_1") == url.ends_with("/1"));
    CHECK(IsMember(key, "bags") == (url == "/bags/1" || url == "/bags/2"));
    CHECK(IsMember(key, "oes_2") == (url.find("oes/2") != std::string::npos));
    CHECK(IsMember(key, "attr") == url.starts_with("/shoes"));
  }
}

}  // namespace
}  // namespace segd::testing
