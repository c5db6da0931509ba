#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/rule.h"
#include "re2/re2.h"

namespace segd {
namespace {

std::unique_ptr<Expr> Parse(std::string_view text) {
  INFO("rule: " << text);
  auto rule = ParseRule(text);
  INFO("status: " << rule.status().ToString());
  REQUIRE(rule.ok());
  return std::move(*rule);
}

// The full message of the error ParseRule reports, "OK" when the rule is valid.
std::string ParseError(std::string_view text) {
  auto rule = ParseRule(text);
  if (rule.ok()) return "OK";
  REQUIRE(rule.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(rule.status().message());
}

std::string FunnelError(std::string_view text) {
  auto step = ParseFunnelStep(text);
  if (step.ok()) return "OK";
  REQUIRE(step.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(step.status().message());
}

std::string Repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST_CASE("RuleParser gives or, and, not and comparisons their precedence", "[core][rule]") {
  auto e = Parse("a or b and not c = 1");
  REQUIRE(e->kind == ExprKind::kOr);
  REQUIRE(e->children.size() == 2);
  CHECK(e->children[0]->kind == ExprKind::kName);
  CHECK(e->children[0]->name == "a");
  const Expr& conj = *e->children[1];
  REQUIRE(conj.kind == ExprKind::kAnd);
  CHECK(conj.text == "b and not c = 1");
  const Expr& neg = *conj.children[1];
  REQUIRE(neg.kind == ExprKind::kNot);
  CHECK(neg.text == "not c = 1");
  CHECK(neg.children[0]->kind == ExprKind::kCompare);
  CHECK(neg.children[0]->text == "c = 1");
}

TEST_CASE("RuleParser flattens and/or chains but keeps parenthesized groups", "[core][rule]") {
  auto e = Parse("a and b and c or d or e");
  REQUIRE(e->kind == ExprKind::kOr);
  REQUIRE(e->children.size() == 3);
  REQUIRE(e->children[0]->kind == ExprKind::kAnd);
  CHECK(e->children[0]->children.size() == 3);
  CHECK(e->children[0]->text == "a and b and c");
  CHECK(e->children[2]->name == "e");

  auto g = Parse("(a or b) or c");
  REQUIRE(g->kind == ExprKind::kOr);
  REQUIRE(g->children.size() == 2);
  CHECK(g->children[0]->kind == ExprKind::kOr);
  CHECK(g->children[0]->text == "(a or b)");
  CHECK(g->children[0]->pos.column == 1);

  auto n = Parse("not not a");
  REQUIRE(n->kind == ExprKind::kNot);
  CHECK(n->children[0]->kind == ExprKind::kNot);
  CHECK(n->children[0]->text == "not a");
}

TEST_CASE("RuleParser parses arithmetic left-associatively with * over +", "[core][rule]") {
  // Three or more operands at one level make one kArith chain, folded from the left.
  auto e = Parse("1 + 2 * 3 - -x / 2 > 0");
  REQUIRE(e->kind == ExprKind::kCompare);
  CHECK(e->op == CompareOp::kGt);
  const Expr& chain = *e->children[0];
  REQUIRE(chain.kind == ExprKind::kArith);
  CHECK(chain.text == "1 + 2 * 3 - -x / 2");
  CHECK(chain.ops == std::vector<ExprKind>{ExprKind::kAdd, ExprKind::kSub});
  REQUIRE(chain.children.size() == 3);
  CHECK(chain.children[0]->literal == Value::Int(1));
  REQUIRE(chain.children[1]->kind == ExprKind::kMul);
  CHECK(chain.children[1]->text == "2 * 3");
  const Expr& div = *chain.children[2];
  REQUIRE(div.kind == ExprKind::kDiv);
  REQUIRE(div.children[0]->kind == ExprKind::kNeg);
  CHECK(div.children[0]->text == "-x");
  CHECK(div.children[0]->children[0]->name == "x");
  CHECK(div.pos.column == 13);

  auto sub = Parse("a - b = 0");
  REQUIRE(sub->children[0]->kind == ExprKind::kSub);
  CHECK(sub->children[0]->children[1]->name == "b");

  auto muls = Parse("a * b / c * d = 0");
  const Expr& m = *muls->children[0];
  REQUIRE(m.kind == ExprKind::kArith);
  CHECK(m.ops == std::vector<ExprKind>{ExprKind::kMul, ExprKind::kDiv, ExprKind::kMul});
  CHECK(m.children[3]->name == "d");

  auto now_chain = Parse("last(x) < 1d + 2h + now()");
  CHECK(now_chain->now_side == 1);
  CHECK(now_chain->now_sign == 1);
  CHECK(now_chain->now_offset_child == kNowOffsetIsPrefix);
  CHECK(ParseError("x < now() - 1d - 2h") ==
        "1:5: now() may appear only as one whole side of a comparison, as now(), now() + E, "
        "now() - E or E + now()");

  auto parens = Parse("(a + b) * c = 0");
  const Expr& mul = *parens->children[0];
  REQUIRE(mul.kind == ExprKind::kMul);
  CHECK(mul.children[0]->kind == ExprKind::kAdd);
  CHECK(mul.children[0]->text == "(a + b)");
}

TEST_CASE("RuleParser parses every comparison operator", "[core][rule]") {
  const std::pair<const char*, CompareOp> cases[] = {
      {"a = 1", CompareOp::kEq},  {"a != 1", CompareOp::kNe}, {"a < 1", CompareOp::kLt},
      {"a <= 1", CompareOp::kLe}, {"a > 1", CompareOp::kGt},  {"a >= 1", CompareOp::kGe}};
  for (const auto& [text, op] : cases) {
    auto e = Parse(text);
    REQUIRE(e->kind == ExprKind::kCompare);
    CHECK(e->op == op);
    CHECK(e->text == text);
    CHECK(e->now_side == -1);
  }
}

TEST_CASE("RuleParser parses in and not in lists of literals", "[core][rule]") {
  auto e = Parse("x in [1, -2, 1.5, -2.5, \"a\", 'b', true, false, 3d, -1h, 10ms]");
  REQUIRE(e->kind == ExprKind::kIn);
  REQUIRE(e->children.size() == 1);
  CHECK(e->children[0]->name == "x");
  const std::vector<Value> want = {Value::Int(1),        Value::Int(-2),     Value::Float(1.5),
                                   Value::Float(-2.5),   Value::String("a"), Value::String("b"),
                                   Value::Bool(true),    Value::Bool(false), Value::Int(259200000),
                                   Value::Int(-3600000), Value::Int(10)};
  CHECK(e->list == want);

  auto n = Parse("plan not in []");
  REQUIRE(n->kind == ExprKind::kNotIn);
  CHECK(n->list.empty());
  CHECK(n->text == "plan not in []");

  auto m = Parse("x in [-9223372036854775808, 9223372036854775807]");
  CHECK(m->list == std::vector<Value>{Value::Int(INT64_MIN), Value::Int(INT64_MAX)});

  auto prec = Parse("not x in [1]");
  REQUIRE(prec->kind == ExprKind::kNot);
  CHECK(prec->children[0]->kind == ExprKind::kIn);
}

TEST_CASE("RuleParser parses string operators and compiles matches", "[core][rule]") {
  auto c = Parse("tags contains \"vip\"");
  CHECK(c->kind == ExprKind::kContains);
  CHECK(c->children[1]->literal == Value::String("vip"));
  CHECK(Parse("email starts_with 'a'")->kind == ExprKind::kStartsWith);
  CHECK(Parse("email ends_with \"@x.com\"")->kind == ExprKind::kEndsWith);
  auto m = Parse("email matches \"^[a-z]+@é\\\\.com$\"");
  REQUIRE(m->kind == ExprKind::kMatches);
  CHECK(m->pattern == "^[a-z]+@é\\.com$");
  REQUIRE(m->regex != nullptr);
  CHECK(RE2::PartialMatch("bob@é.com", *m->regex));
  CHECK_FALSE(RE2::PartialMatch("bob@éxcom", *m->regex));
  CHECK(m->children.size() == 1);
}

TEST_CASE("RuleParser reads literals of every kind", "[core][rule]") {
  auto lit = [](std::string_view rule) {
    auto e = Parse(rule);
    REQUIRE(e->kind == ExprKind::kCompare);
    REQUIRE(e->children[1]->kind == ExprKind::kLiteral);
    return e->children[1]->literal;
  };
  CHECK(lit("x = 42") == Value::Int(42));
  CHECK(lit("x = 9223372036854775807") == Value::Int(INT64_MAX));
  CHECK(lit("x = 1.5") == Value::Float(1.5));
  CHECK(lit("x = 2e3") == Value::Float(2000.0));
  CHECK(lit("x = 1.5E-3") == Value::Float(0.0015));
  CHECK(lit("x = true") == Value::Bool(true));
  CHECK(lit("x = false") == Value::Bool(false));
  CHECK(lit("x = 5ms") == Value::Int(5));
  CHECK(lit("x = 2s") == Value::Int(2000));
  CHECK(lit("x = 3m") == Value::Int(180000));
  CHECK(lit("x = 4h") == Value::Int(14400000));
  CHECK(lit("x = 1d") == Value::Int(86400000));
  CHECK(lit("x = 2w") == Value::Int(1209600000));
  CHECK(lit("x = 15250284452w") == Value::Int(15250284452LL * 604800000LL));
  CHECK(lit("x = 9223372036854775807ms") == Value::Int(INT64_MAX));
  CHECK(lit("x = \"a\\\\b\\\"c\\'d\\ne\\tf\\rg\\u00e9\"") ==
        Value::String("a\\b\"c'd\ne\tf\rg\xc3\xa9"));
  CHECK(lit("x = 'it\\'s \"q\"'") == Value::String("it's \"q\""));
  CHECK(lit("x = \"\"") == Value::String(""));
  auto minimum = Parse("x = -9223372036854775808");
  CHECK(minimum->children[1]->kind == ExprKind::kLiteral);
  CHECK(minimum->children[1]->literal == Value::Int(INT64_MIN));
  CHECK(minimum->children[1]->text == "-9223372036854775808");
  auto neg = Parse("x = -5");
  REQUIRE(neg->children[1]->kind == ExprKind::kNeg);
  CHECK(neg->children[1]->children[0]->literal == Value::Int(5));
}

TEST_CASE("RuleParser reads names: identifiers, backticks, function names alone", "[core][rule]") {
  auto b = Parse("`first name` = \"Ann\" and `where` = 1 and `é` = 2");
  CHECK(b->children[0]->children[0]->name == "first name");
  CHECK(b->children[0]->children[0]->text == "`first name`");
  CHECK(b->children[1]->children[0]->name == "where");
  CHECK(b->children[2]->children[0]->name == "é");

  auto count = Parse("count > 3");
  REQUIRE(count->children[0]->kind == ExprKind::kName);
  CHECK(count->children[0]->name == "count");
  CHECK_FALSE(count->children[0]->is_property);
  CHECK(Parse("now = sum")->children[1]->name == "sum");

  auto call = Parse("count (login) > 1");
  CHECK(call->children[0]->kind == ExprKind::kAggregate);
  CHECK(call->children[0]->text == "count (login)");

  auto has = Parse("has(email) and not has(`phone number`)");
  REQUIRE(has->children[0]->kind == ExprKind::kHas);
  CHECK(has->children[0]->name == "email");
  CHECK_FALSE(has->children[0]->is_property);
  CHECK(has->children[1]->children[0]->name == "phone number");
  CHECK(Parse("flag")->kind == ExprKind::kName);
  CHECK(Parse("Count > 1")->children[0]->name == "Count");
}

TEST_CASE("RuleParser parses selector aggregates", "[core][rule]") {
  auto e = Parse("count(login) > 3");
  const Expr& agg = *e->children[0];
  REQUIRE(agg.kind == ExprKind::kAggregate);
  CHECK(agg.fn == AggregateFn::kCount);
  CHECK(agg.selector.event_type == "login");
  CHECK_FALSE(agg.selector.any_type);
  CHECK(agg.selector.where == nullptr);
  CHECK(agg.selector.within_ms == -1);
  CHECK(agg.selector.pos.column == 7);

  auto d = Parse("did(* where x = 1 and has(y) within 7d)");
  REQUIRE(d->kind == ExprKind::kAggregate);
  CHECK(d->fn == AggregateFn::kDid);
  CHECK(d->selector.any_type);
  CHECK(d->selector.event_type == "*");
  CHECK(d->selector.within_ms == 7 * 86400000LL);
  const Expr& where = *d->selector.where;
  REQUIRE(where.kind == ExprKind::kAnd);
  CHECK(where.text == "x = 1 and has(y)");
  CHECK(where.children[0]->children[0]->is_property);
  CHECK(where.children[1]->kind == ExprKind::kHas);
  CHECK(where.children[1]->is_property);

  auto f = Parse("first(\"page view\" within 30m) < last(page_view)");
  CHECK(f->children[0]->fn == AggregateFn::kFirst);
  CHECK(f->children[0]->selector.event_type == "page view");
  CHECK(f->children[0]->selector.within_ms == 1800000);
  CHECK(f->children[1]->fn == AggregateFn::kLast);
}

TEST_CASE("RuleParser parses property aggregates", "[core][rule]") {
  auto e = Parse("sum(purchase.price where currency = \"EUR\" within 30d) > 100");
  const Expr& agg = *e->children[0];
  CHECK(agg.fn == AggregateFn::kSum);
  CHECK(agg.selector.event_type == "purchase");
  CHECK(agg.property == "price");
  CHECK(agg.selector.within_ms == 30 * 86400000LL);
  REQUIRE(agg.selector.where != nullptr);
  CHECK(agg.selector.where->children[0]->is_property);
  CHECK(agg.text == "sum(purchase.price where currency = \"EUR\" within 30d)");

  const std::pair<const char*, AggregateFn> fns[] = {
      {"avg", AggregateFn::kAvg},
      {"min", AggregateFn::kMin},
      {"max", AggregateFn::kMax},
      {"count_distinct", AggregateFn::kCountDistinct}};
  for (const auto& [name, fn] : fns) {
    auto a = Parse(std::string(name) + "(\"add to cart\".`sku id`) > 1");
    CHECK(a->children[0]->fn == fn);
    CHECK(a->children[0]->selector.event_type == "add to cart");
    CHECK(a->children[0]->property == "sku id");
  }
  CHECK(Parse("max(*.amount) > 1")->children[0]->selector.any_type);
}

TEST_CASE("RuleParser parses sequences, now() and in_segment()", "[core][rule]") {
  auto s = Parse("sequence(view where sku = 1, \"add to cart\", * within 1h)");
  REQUIRE(s->kind == ExprKind::kSequence);
  REQUIRE(s->steps.size() == 3);
  CHECK(s->within_ms == 3600000);
  CHECK(s->steps[0].event_type == "view");
  CHECK(s->steps[0].where->children[0]->is_property);
  CHECK(s->steps[0].within_ms == -1);
  CHECK(s->steps[1].event_type == "add to cart");
  CHECK(s->steps[2].any_type);
  CHECK(s->steps[2].pos.column == 45);
  CHECK(Parse("sequence(a)")->within_ms == -1);

  auto seg = Parse("in_segment(\"vip.users-1\") or in_segment('x_y')");
  CHECK(seg->children[0]->kind == ExprKind::kInSegment);
  CHECK(seg->children[0]->segment == "vip.users-1");
  CHECK(seg->children[1]->segment == "x_y");
}

TEST_CASE("RuleChecker records where now() sits in a comparison", "[core][rule]") {
  struct Case {
    const char* rule;
    int side, sign, offset;
  };
  const Case cases[] = {{"signup_at > now() - 7d", 1, -1, 1},
                        {"now() < trial_end", 0, 0, -1},
                        {"x < 1d + now()", 1, 1, 0},
                        {"(now() + 1h) >= x", 0, 1, 1},
                        {"((now())) = x", 0, 0, -1},
                        {"last(login) < (now() - 30d)", 1, -1, 1},
                        {"now() - (1d + x) != y * 2", 0, -1, 1},
                        {"x = 1", -1, 0, -1}};
  for (const Case& c : cases) {
    INFO(c.rule);
    auto e = Parse(c.rule);
    REQUIRE(e->kind == ExprKind::kCompare);
    CHECK(e->now_side == c.side);
    CHECK(e->now_sign == c.sign);
    CHECK(e->now_offset_child == c.offset);
  }
  auto w = Parse("did(login where time > now() - 1d)");
  const Expr& cmp = *w->selector.where;
  CHECK(cmp.now_side == 1);
  CHECK(cmp.now_sign == -1);
  CHECK(cmp.children[1]->children[0]->kind == ExprKind::kNow);
}

TEST_CASE("RuleParser records positions and text across lines and UTF-8", "[core][rule]") {
  auto e = Parse("# segment of big spenders\n  a = 1 # trailing\n  and\n\tb = \"é\" and `ü` = 2");
  REQUIRE(e->kind == ExprKind::kAnd);
  CHECK(e->pos.line == 2);
  CHECK(e->pos.column == 3);
  CHECK(e->text == "a = 1 # trailing\n  and\n\tb = \"é\" and `ü` = 2");
  CHECK(e->children[0]->text == "a = 1");
  CHECK(e->children[1]->pos.line == 4);
  CHECK(e->children[1]->pos.column == 2);
  CHECK(e->children[2]->pos.line == 4);
  CHECK(e->children[2]->pos.column == 14);
  CHECK(e->children[2]->children[1]->pos.column == 20);

  auto c = Parse("  count(login) > 1  # done");
  CHECK(c->text == "count(login) > 1");
  CHECK(c->pos.column == 3);
}

TEST_CASE("RuleParser reports malformed rules with exact messages", "[core][rule]") {
  const std::pair<std::string, std::string> cases[] = {
      // Syntax.
      {"", "1:1: expected an expression, found end of rule"},
      {"  # only a comment", "1:19: expected an expression, found end of rule"},
      {"(a", "1:3: expected ')' to close '(' at 1:1, found end of rule"},
      {"did(a) and (b = 1 or c", "1:23: expected ')' to close '(' at 1:12, found end of rule"},
      {"count(login where x > 1 within 7d b) > 1", "1:35: expected ')' after selector, found 'b'"},
      {"count(login", "1:12: expected ')' after selector, found end of rule"},
      {"Count(x) > 1", "1:1: unknown function 'Count'"},
      {"a = 1 and nope (x)", "1:11: unknown function 'nope'"},
      {"a = 1\n    and and b", "2:9: expected an expression, found 'and'"},
      {"where = 1",
       "1:1: expected an expression, found 'where' (a reserved word: write `where` to use it as a "
       "name)"},
      {"x = in",
       "1:5: expected an expression, found 'in' (a reserved word: write `in` to use it as a name)"},
      {"x = 1 y", "1:7: expected end of rule, found 'y'"},
      {"a < b < c", "1:7: comparisons cannot be chained: combine them with 'and'"},
      {"a not b", "1:7: expected 'in' after 'not', found 'b'"},
      {"x == 1", "1:4: '==' is not an operator: compare with '='"},
      {"x ! y", "1:3: unexpected character '!' (use 'not' or '!=')"},
      {"x in (1)", "1:6: expected '[' after 'in', found '('"},
      {"x in [1,]",
       "1:9: expected a literal list item (number, string, bool or duration), found ']'"},
      {"x in [1 2]", "1:9: expected ',' or ']' in list, found '2'"},
      {"x in [y]",
       "1:7: expected a literal list item (number, string, bool or duration), found 'y'"},
      {"x in [-\"a\"]", "1:8: expected a number or a duration after '-' in list, found \"a\""},
      {"x matches y", "1:11: expected a string pattern after 'matches', found 'y'"},
      {"sum(purchase) > 1",
       "1:13: expected '.' and a property name after the event type in sum(), as in "
       "sum(purchase.price), found ')'"},
      {"sum(purchase.price within 7d where x) > 1", "1:30: 'where' must come before 'within'"},
      {"min(a.where) > 1",
       "1:7: expected a property name after '.', found 'where' (a reserved word: write `where` to "
       "use it as a name)"},
      {"sequence(a within 1d, b)",
       "1:21: 'within' must come last in sequence(): it applies to the whole sequence"},
      {"sequence(a, b c)",
       "1:15: expected ',', 'within' or ')' after a step of sequence(), found 'c'"},
      {"count(within) > 1",
       "1:7: expected an event type (a name, a string or '*') in count(), found 'within'"},
      {"count(\"\") > 1", "1:7: an event type has 1 to 128 bytes"},
      {"now(1) > x", "1:5: now() takes no arguments: expected ')', found '1'"},
      {"has(1)", "1:5: expected a name in has(), found '1'"},
      {"has(where)",
       "1:5: expected a name in has(), found 'where' (a reserved word: write `where` to use it as "
       "a "
       "name)"},
      {"a = 1 and\n  count(x where y = 1 within 5) > 0",
       "2:30: expected a duration after 'within', found '5' (add a unit: ms, s, m, h, d or w)"},
      {"did(x within \"1d\")", "1:14: expected a duration after 'within' (e.g. 30d), found \"1d\""},
      // Lexical.
      {"x = \"abc", "1:5: unterminated string"},
      {"x = 'abc\n'", "1:5: unterminated string"},
      {"x = `abc", "1:5: unterminated backtick name"},
      {"x = ``", "1:5: empty backtick name: a name has 1 to 128 bytes"},
      {"x = \"\\q\"",
       "1:6: invalid escape '\\q' in string (valid: \\\\ \\\" \\' \\n \\t \\r \\uXXXX)"},
      {"x = \"\\u12\"", "1:6: invalid escape '\\u': expected 4 hex digits (\\uXXXX)"},
      {"x = \"\\ud800\"", "1:6: invalid escape '\\uD800': a surrogate is not a character"},
      {"x = 99999999999999999999", "1:5: integer 99999999999999999999 does not fit in int64"},
      {"x = 9223372036854775808", "1:5: integer 9223372036854775808 does not fit in int64"},
      {"x > 99999999999999999w", "1:5: duration 99999999999999999w overflows int64 milliseconds"},
      {"x > 15250284453w", "1:5: duration 15250284453w overflows int64 milliseconds"},
      {"x > 9223372036854775808ms",
       "1:5: duration 9223372036854775808ms overflows int64 milliseconds"},
      {"x = 1e400", "1:5: float 1e400 is out of range"},
      {"x = 30days", "1:5: unknown duration unit 'days' in '30days' (units: ms, s, m, h, d, w)"},
      {"x = 1.5d",
       "1:5: invalid number '1.5d': a duration is an int followed by a unit (ms, s, m, h, d, w)"},
      {"x = é", "1:5: unexpected character 'é'"},
      {"\"é\" = `ü` or )", "1:14: expected an expression, found ')'"},
      {"\"日本\" = x and\n  `ü` = y z", "2:11: expected end of rule, found 'z'"},
      {"x = \"日本\" y", "1:10: expected end of rule, found 'y'"},
      {"a = \xff", "1:5: invalid UTF-8 in rule text"},
      {"a = 1 # bad \xc3\x28", "1:13: invalid UTF-8 in rule text"},
      {"x = \"\xe9\"", "1:6: invalid UTF-8 in rule text"},
      // Literal checks inside the grammar.
      {"x matches \"(\"", "1:11: invalid regular expression \"(\": missing ): ("},
      {"in_segment(\"a b\")",
       "1:12: invalid segment id \"a b\": a segment id is 1 to 128 bytes of [A-Za-z0-9_.-]"},
      {"in_segment(\"\")",
       "1:12: invalid segment id \"\": a segment id is 1 to 128 bytes of [A-Za-z0-9_.-]"},
      {"in_segment(x)", "1:12: expected a segment id string in in_segment(), found 'x'"},
      // Bool yield.
      {"age + 1", "1:1: a rule must be able to yield a bool, but `age + 1` is always a number"},
      {"count(login)",
       "1:1: a rule must be able to yield a bool, but `count(login)` is always a number"},
      {"\"x\"", "1:1: a rule must be able to yield a bool, but `\"x\"` is always a string"},
      {"1d", "1:1: a rule must be able to yield a bool, but `1d` is always a number"},
      {"  (sum(p.x))",
       "1:3: a rule must be able to yield a bool, but `(sum(p.x))` is always a number"},
      {"did(purchase where price + 1)",
       "1:20: a where predicate must be able to yield a bool, but `price + 1` is always a number"},
      {"sequence(a, b where 'x')",
       "1:21: a where predicate must be able to yield a bool, but `'x'` is always a string"},
      // Where restrictions.
      {"count(a where count(b) > 1) > 0",
       "1:15: aggregate count() is not allowed inside a where predicate"},
      {"did(a where sum(b.c) > 1)",
       "1:13: aggregate sum() is not allowed inside a where predicate"},
      {"did(a where not sequence(b, c))",
       "1:17: aggregate sequence() is not allowed inside a where predicate"},
      {"did(a where in_segment(\"x\"))",
       "1:13: in_segment() is not allowed inside a where predicate: it tests the profile, not the "
       "event"},
      // now() placement.
      {"now()", "1:1: a rule must be able to yield a bool, but `now()` is always a number"},
      {"now() in [1]",
       "1:1: now() may appear only as one whole side of a comparison, as now(), now() + E, now() - "
       "E or E + now()"},
      {"x > now() - 1d - 2d",
       "1:5: now() may appear only as one whole side of a comparison, as now(), now() + E, now() - "
       "E or E + now()"},
      {"x > 2 * now()",
       "1:9: now() may appear only as one whole side of a comparison, as now(), now() + E, now() - "
       "E or E + now()"},
      {"x > 1d - now()",
       "1:10: now() may appear only as one whole side of a comparison, as now(), now() + E, now() "
       "- E or E + now()"},
      {"x > -now()",
       "1:6: now() may appear only as one whole side of a comparison, as now(), now() + E, now() - "
       "E or E + now()"},
      {"now() + now() > x",
       "1:1: now() may appear only as one whole side of a comparison, as now(), now() + E, now() - "
       "E or E + now()"},
      {"now() > now()", "1:9: now() may appear on only one side of a comparison"},
      {"now() - 1d > 1d + now()", "1:19: now() may appear on only one side of a comparison"},
      {"x > now() and\n now() contains \"1\"",
       "2:2: now() may appear only as one whole side of a comparison, as now(), now() + E, now() - "
       "E or E + now()"},
      {"did(a where now() - t)",
       "1:13: a where predicate must be able to yield a bool, but `now() - t` is always a number"},
      {"did(a where t > now() * 2)",
       "1:17: now() may appear only as one whole side of a comparison, as now(), now() + E, now() "
       "- E or E + now()"},
      {"now() > x + now() - 1d",
       "1:13: now() may appear only as one whole side of a comparison, as now(), now() + E, now() "
       "- E or E + now()"},
  };
  for (const auto& [rule, message] : cases) {
    INFO("rule: " << rule);
    CHECK(ParseError(rule) == message);
  }
}

TEST_CASE("RuleParser limits nesting depth to 64", "[core][rule]") {
  CHECK(ParseError(Repeat("(", 64) + "a" + Repeat(")", 64)) == "OK");
  CHECK(ParseError(Repeat("(", 65) + "a" + Repeat(")", 65)) ==
        "1:65: rule is nested deeper than 64 levels (parentheses, calls, 'not', unary minus)");
  CHECK(ParseError(Repeat("not ", 64) + "a") == "OK");
  CHECK(ParseError(Repeat("not ", 65) + "a") ==
        "1:257: rule is nested deeper than 64 levels (parentheses, calls, 'not', unary minus)");
  CHECK(ParseError("x = " + Repeat("-", 64) + "1") == "OK");
  CHECK(ParseError("x = " + Repeat("-", 65) + "1") ==
        "1:69: rule is nested deeper than 64 levels (parentheses, calls, 'not', unary minus)");
  // 63 parentheses plus the call of has() is 64; one more parenthesis is too deep.
  CHECK(ParseError(Repeat("(", 63) + "has(a)" + Repeat(")", 63)) == "OK");
  CHECK(ParseError(Repeat("(", 64) + "has(a)" + Repeat(")", 64)) ==
        "1:65: rule is nested deeper than 64 levels (parentheses, calls, 'not', unary minus)");
  // A where predicate nests inside its call.
  CHECK(ParseError("did(x where " + Repeat("(", 63) + "a" + Repeat(")", 63) + ")") == "OK");
  CHECK(ParseError("did(x where " + Repeat("(", 64) + "a" + Repeat(")", 64) + ")") ==
        "1:76: rule is nested deeper than 64 levels (parentheses, calls, 'not', unary minus)");
  // Far deeper input fails the same way, without exhausting the stack.
  CHECK(ParseError(Repeat("(", 8000)) ==
        "1:65: rule is nested deeper than 64 levels (parentheses, calls, 'not', unary minus)");
  CHECK(ParseError(Repeat("not (", 3000)) ==
        "1:161: rule is nested deeper than 64 levels (parentheses, calls, 'not', unary minus)");
}

TEST_CASE("RuleParser handles the longest arithmetic chain within the size limit", "[core][rule]") {
  std::string rule = "x = 1" + Repeat("+1", (static_cast<int>(kMaxRuleBytes) - 5) / 2);
  REQUIRE(rule.size() <= kMaxRuleBytes);
  auto e = Parse(rule);
  // One chain node, not thousands of nested ones: no walker can run out of stack.
  REQUIRE(e->children[1]->kind == ExprKind::kArith);
  CHECK(e->children[1]->children.size() == (kMaxRuleBytes - 5) / 2 + 1);
  auto copy = CloneExpr(*e);
  CHECK(copy->text == e->text);
  CHECK(CollectRuleInfo(*copy).attributes.contains("x"));
  CHECK(ValidateRule(rule).empty());
}

TEST_CASE("RuleParser limits rule text to 16 KiB", "[core][rule]") {
  std::string rule = "x = 1 #";
  rule += std::string(kMaxRuleBytes - rule.size(), 'c');
  REQUIRE(rule.size() == kMaxRuleBytes);
  CHECK(ParseError(rule) == "OK");
  rule += "c";
  CHECK(ParseError(rule) == "1:1: rule is longer than 16384 bytes");
  CHECK(ParseError(std::string(128, 'n') + " = 1") == "OK");
  CHECK(ParseError("x = 1 or " + std::string(129, 'n') + " = 1") ==
        "1:10: name is longer than 128 bytes");
  CHECK(ParseError("has(`" + std::string(129, 'n') + "`)") == "1:5: name is longer than 128 bytes");
  CHECK(ParseError("did(\"" + std::string(129, 'e') + "\")") ==
        "1:5: an event type has 1 to 128 bytes");
  CHECK(FunnelError("a where " + rule) == "1:1: funnel step is longer than 16384 bytes");
}

TEST_CASE("RuleParser parses funnel steps", "[core][rule]") {
  auto step = ParseFunnelStep("add_to_cart where price > 10 and has(sku)");
  REQUIRE(step.ok());
  CHECK(step->event_type == "add_to_cart");
  CHECK(step->within_ms == -1);
  REQUIRE(step->where != nullptr);
  CHECK(step->where->children[0]->children[0]->is_property);
  CHECK(step->where->children[1]->is_property);
  auto plain = ParseFunnelStep(" \"page view\" ");
  REQUIRE(plain.ok());
  CHECK(plain->event_type == "page view");
  CHECK(plain->where == nullptr);
  CHECK(ParseFunnelStep("*")->any_type);
  auto now = ParseFunnelStep("login where t > now() - 1h");
  REQUIRE(now.ok());
  CHECK(now->where->now_side == 1);

  CHECK(FunnelError("add_to_cart within 7d") ==
        "1:13: 'within' is not allowed in a funnel step: the funnel's window applies");
  CHECK(FunnelError("add_to_cart where price > 1 within 7d") ==
        "1:29: 'within' is not allowed in a funnel step: the funnel's window applies");
  CHECK(FunnelError("add_to_cart where price + 1") ==
        "1:19: a funnel step's predicate must be able to yield a bool, but `price + 1` is always a "
        "number");
  CHECK(FunnelError("a where count(b) > 1") ==
        "1:9: aggregate count() is not allowed inside a where predicate");
  CHECK(FunnelError("a where now() = 1 + now()") ==
        "1:21: now() may appear on only one side of a comparison");
  CHECK(FunnelError("a b") == "1:3: expected 'where' or end of funnel step, found 'b'");
  CHECK(
      FunnelError("") ==
      "1:1: expected an event type (a name, a string or '*') in a funnel step, found end of rule");
  CHECK(FunnelError("a where") == "1:8: expected an expression, found end of rule");
}

TEST_CASE("ValidateRule reports the first error and every check error", "[core][rule]") {
  CHECK(ValidateRule("count(login) > 1 and has(email)").empty());
  auto syntax = ValidateRule("a = 1\n  and (");
  REQUIRE(syntax.size() == 1);
  CHECK(syntax[0].pos.line == 2);
  CHECK(syntax[0].pos.column == 8);
  CHECK(syntax[0].message == "expected an expression, found end of rule");

  auto checks = ValidateRule("did(a where count(b) > 1) and x > 2 * now()");
  REQUIRE(checks.size() == 2);
  CHECK(checks[0].pos.column == 13);
  CHECK(checks[0].message == "aggregate count() is not allowed inside a where predicate");
  CHECK(checks[1].pos.column == 39);
  CHECK(ParseError("did(a where count(b) > 1) and x > 2 * now()") ==
        "1:13: aggregate count() is not allowed inside a where predicate");
  CHECK(ValidateRule(std::string(kMaxRuleBytes + 1, ' '))[0].message ==
        "rule is longer than 16384 bytes");
}

TEST_CASE("CollectRuleInfo lists attributes, event types, segments and time use", "[core][rule]") {
  auto e = Parse(
      "age >= 18 and has(email) and count(login where device = \"ios\" within 7d) > 2 "
      "and sum(purchase.price where has(coupon)) > 100 and in_segment(\"vip\") "
      "and sequence(view, \"add to cart\" where qty > 1)");
  RuleInfo info = CollectRuleInfo(*e);
  CHECK(info.attributes == absl::flat_hash_set<std::string>{"age", "email"});
  CHECK(info.event_types ==
        absl::flat_hash_set<std::string>{"login", "purchase", "view", "add to cart"});
  CHECK_FALSE(info.any_event_type);
  CHECK(info.segments == absl::flat_hash_set<std::string>{"vip"});
  CHECK_FALSE(info.reads_now);
  CHECK(info.reads_events);
  CHECK(info.time_dependent());

  RuleInfo plain = CollectRuleInfo(*Parse("plan = \"pro\" or `trial end` > 0"));
  CHECK(plain.attributes == absl::flat_hash_set<std::string>{"plan", "trial end"});
  CHECK(plain.event_types.empty());
  CHECK_FALSE(plain.time_dependent());

  RuleInfo timed = CollectRuleInfo(*Parse("signup_at > now() - 7d or did(* within 1d)"));
  CHECK(timed.reads_now);
  CHECK(timed.any_event_type);
  CHECK(timed.event_types.empty());
  CHECK(timed.attributes == absl::flat_hash_set<std::string>{"signup_at"});

  RuleInfo where_now = CollectRuleInfo(*Parse("did(login where t > now() - 1h)"));
  CHECK(where_now.reads_now);
  CHECK(where_now.attributes.empty());
}

TEST_CASE("The checker caps counts compared with a number, and CloneExpr keeps the cap",
          "[core][rule]") {
  struct Case {
    std::string rule;
    int side;
    uint64_t cap;
  };
  const std::vector<Case> cases = {
      {"count(a) >= 5", 0, 5},
      {"count(a) > 5", 0, 6},
      {"count(a) = 2.5", 0, 3},
      {"count(a) < 0", 0, 1},
      {"count(a) < -1", -1, 0},  // -1 is a negation, not a literal
      {"5 <= count(a within 1d)", 1, 5},
      {"5 < count(a)", 1, 6},
      {"count_distinct(a.p) >= 16", 0, 16},
      {"count_distinct(a.p) >= 17", -1, 0},  // beyond kMaxCappedDistinct
      {"count(a) >= 1e300", -1, 0},
      {"sum(a.p) >= 5", -1, 0},
      {"count(a) >= x", -1, 0},
  };
  for (const Case& c : cases) {
    INFO(c.rule);
    auto e = Parse(c.rule);
    CHECK(e->counted_side == c.side);
    CHECK(e->count_cap == c.cap);
    auto copy = CloneExpr(*e);
    CHECK(copy->counted_side == c.side);
    CHECK(copy->count_cap == c.cap);
  }
}

TEST_CASE("CloneExpr makes a deep copy", "[core][rule]") {
  auto e = Parse(
      "email matches \"@x\" and did(a where p in [1, 2] within 1d) and sequence(b where q, c "
      "within "
      "2h) and x > now() - 1d");
  auto c = CloneExpr(*e);
  REQUIRE(c->children.size() == 4);
  CHECK(c->text == e->text);
  CHECK(c->children[0]->regex == e->children[0]->regex);
  CHECK(c->children[0]->pattern == "@x");
  CHECK(c->children[1]->selector.where != e->children[1]->selector.where);
  CHECK(c->children[1]->selector.where->list == e->children[1]->selector.where->list);
  CHECK(c->children[1]->selector.within_ms == 86400000);
  REQUIRE(c->children[2]->steps.size() == 2);
  CHECK(c->children[2]->steps[0].where->name == "q");
  CHECK(c->children[2]->steps[0].where->is_property);
  CHECK(c->children[2]->within_ms == 7200000);
  CHECK(c->children[3]->now_side == 1);
  CHECK(c->children[3]->now_sign == -1);
  CHECK(c->children[3]->now_offset_child == 1);
  c->children[1]->selector.where->name_id = 7;
  CHECK(e->children[1]->selector.where->name_id == kUnbound);
  c->children[3]->children[0]->name = "y";
  CHECK(e->children[3]->children[0]->name == "x");

  Selector s = CloneSelector(e->children[1]->selector);
  CHECK(s.event_type == "a");
  CHECK(s.where->kind == ExprKind::kIn);
  CHECK(s.where.get() != e->children[1]->selector.where.get());
}

}  // namespace
}  // namespace segd
