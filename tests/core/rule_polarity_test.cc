#include "core/rule_polarity.h"

#include <catch2/catch.hpp>

namespace segd {
namespace {

Polarity Of(const std::string& rule, std::string_view type) {
  absl::StatusOr<std::unique_ptr<Expr>> e = ParseRule(rule);
  INFO(rule << ": " << e.status().message());
  REQUIRE(e.ok());
  return EventPolarity(**e, type);
}

TEST_CASE("Rules that only grow with more events are kUp", "[core][polarity]") {
  CHECK(Of("did(view within 7d)", "view") == Polarity::kUp);
  CHECK(Of("count(view within 1d) >= 5", "view") == Polarity::kUp);
  CHECK(Of("5 < count(view where url starts_with \"/s\")", "view") == Polarity::kUp);
  CHECK(Of("sequence(view, cart, buy within 7d)", "cart") == Polarity::kUp);
  CHECK(Of("count_distinct(view.category within 7d) >= 3", "view") == Polarity::kUp);
  CHECK(Of("last(login) > now() - 1h and device != \"web\"", "login") == Polarity::kUp);
  CHECK(Of("first(login) < now() - 30d", "login") == Polarity::kUp);
  CHECK(Of("max(buy.amount) >= 100", "buy") == Polarity::kUp);
  CHECK(Of("did(*)", "anything") == Polarity::kUp);
  CHECK(Of("count(*) > 2", "") == Polarity::kUp);
}

TEST_CASE("Negations and upper bounds are kDown", "[core][polarity]") {
  CHECK(Of("not did(login within 14d)", "login") == Polarity::kDown);
  CHECK(Of("count(view) < 3", "view") == Polarity::kDown);
  CHECK(Of("in_segment(\"vip\") and not did(view within 2d)", "view") == Polarity::kDown);
  CHECK(Of("did(cart within 1d) and not did(buy within 1d)", "buy") == Polarity::kDown);
  CHECK(Of("did(cart within 1d) and not did(buy within 1d)", "cart") == Polarity::kUp);
}

TEST_CASE("Anything that can move both ways is kUnknown", "[core][polarity]") {
  CHECK(Of("sum(buy.amount within 30d) > 200", "buy") == Polarity::kUnknown);  // amounts < 0
  CHECK(Of("avg(buy.amount) >= 80", "buy") == Polarity::kUnknown);
  CHECK(Of("count(view) = 3", "view") == Polarity::kUnknown);
  CHECK(Of("did(view) and not did(*)", "view") == Polarity::kUnknown);
  CHECK(Of("last(login) < now() - 30d", "login") == Polarity::kUnknown);  // missing -> present
  CHECK(Of("count(view) in [1, 2]", "view") == Polarity::kUnknown);
  CHECK(Of("count(view) * 2 > 4", "view") == Polarity::kUnknown);
  CHECK(Of("did(cart) and not did(buy)", "") == Polarity::kUnknown);
}

TEST_CASE("Rules that do not read the type are kNone", "[core][polarity]") {
  CHECK(Of("did(view)", "buy") == Polarity::kNone);
  CHECK(Of("age > 3 and in_segment(\"x\")", "buy") == Polarity::kNone);
  CHECK(Of("sequence(view, cart)", "buy") == Polarity::kNone);
}

}  // namespace
}  // namespace segd

namespace segd {
namespace {

// AppendedEventSelectors of `rule`, each as its event type and where predicate's text.
std::vector<std::string> Appended(const std::string& rule) {
  absl::StatusOr<std::unique_ptr<Expr>> e = ParseRule(rule);
  INFO(rule << ": " << e.status().message());
  REQUIRE(e.ok());
  std::vector<std::string> out;
  for (const Selector* s : AppendedEventSelectors(**e)) {
    out.push_back(s->where == nullptr ? s->event_type : s->event_type + " where " + s->where->text);
  }
  return out;
}

TEST_CASE("Appended events reach a rule through its aggregates and its sequences' last steps",
          "[core][polarity]") {
  using V = std::vector<std::string>;
  CHECK(Appended("country = \"DK\"") == V{});
  CHECK(Appended("sequence(view, cart, buy within 7d)") == V{"buy"});
  CHECK(Appended("sequence(view where url starts_with \"/s\", * where n > 1)") ==
        V{"* where n > 1"});
  CHECK(Appended("count(view where url starts_with \"/shoes\" within 3d) >= 2") ==
        V{"view where url starts_with \"/shoes\""});
  CHECK(Appended("in_segment(\"vip\") and not did(view within 2d) or sum(buy.amount) > "
                 "avg(buy.amount where amount > 0) + count(*)") ==
        V{"view", "buy", "buy where amount > 0", "*"});
  CHECK(Appended("last(login) > now() - 1h and sequence(a, b) and did(c)") == V{"login", "b", "c"});
}

}  // namespace
}  // namespace segd
