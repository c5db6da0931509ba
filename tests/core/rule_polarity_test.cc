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
