#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "core/value.h"

namespace re2 {
class RE2;
}

namespace segd {

// A place in rule text: lines and columns from 1, columns in code points (SPEC §3).
struct Position {
  uint32_t line = 1;
  uint32_t column = 1;
};

// Sentinel for name, type and segment ids before a shard binds the rule.
inline constexpr uint32_t kUnbound = 0xffffffffu;
inline constexpr int8_t kNowOffsetIsPrefix = -2;

enum class ExprKind : uint8_t {
  kLiteral,     // literal: int, float, string or bool (a duration is an int of ms)
  kName,        // a profile attribute, or an event property inside `where`
  kHas,         // has(name): attribute exists (event property inside `where`)
  kNow,         // now(); the checker allows it only as described in SPEC §3
  kInSegment,   // in_segment("id")
  kAnd,         // children[0] and children[1] and ... (flattened, >= 2 children)
  kOr,          // children[0] or children[1] or ... (flattened, >= 2 children)
  kNot,         // not children[0]
  kCompare,     // children[0] <compare> children[1]
  kIn,          // children[0] in list
  kNotIn,       // children[0] not in list
  kContains,    // children[0] contains children[1]
  kStartsWith,  // children[0] starts_with children[1]
  kEndsWith,    // children[0] ends_with children[1]
  kMatches,     // children[0] matches regex
  kAdd,         // children[0] + children[1]
  kSub,         // children[0] - children[1]
  kMul,         // children[0] * children[1]
  kDiv,         // children[0] / children[1]
  kNeg,         // -children[0]
  kArith,       // children[0] ops[0] children[1] ops[1] ... children[n]: a chain of three
                // or more operands at one precedence level, folded from the left exactly
                // like nested binary nodes, but as one node so that a 16 KiB chain does
                // not make a tree thousands of levels deep
  kAggregate,   // aggregate(selector) or aggregate(type.property ...)
  kSequence,    // sequence(steps ... within D)
};

enum class CompareOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };

enum class AggregateFn : uint8_t {
  kCount,          // count(sel): int
  kDid,            // did(sel): bool
  kFirst,          // first(sel): time of the earliest match, an int
  kLast,           // last(sel): time of the latest match, an int
  kSum,            // sum(T.p ...)
  kAvg,            // avg(T.p ...)
  kMin,            // min(T.p ...)
  kMax,            // max(T.p ...)
  kCountDistinct,  // count_distinct(T.p ...)
};

struct Expr;

// `event_type [where pred] [within D]`: the events a selector, an aggregate or a
// sequence step matches.
struct Selector {
  std::string event_type;  // as written, quotes removed; "*" when any_type
  bool any_type = false;
  std::unique_ptr<Expr> where;  // null when absent; names inside are event properties
  int64_t within_ms = -1;       // -1 when absent; always -1 on sequence steps
  Position pos;                 // of the event type token
  uint32_t type_id = kUnbound;  // bound per shard (unused when any_type)
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  Position pos;      // of the expression's first token
  std::string text;  // the source text of this expression, for Explain

  Value literal;                          // kLiteral
  std::string name;                       // kName, kHas: attribute or property name
  bool is_property = false;               // kName, kHas: inside a `where` predicate
  uint32_t name_id = kUnbound;            // kName, kHas: bound per shard
  CompareOp op = CompareOp::kEq;          // kCompare
  std::vector<ExprKind> ops;              // kArith: kAdd, kSub, kMul or kDiv; children - 1
  std::vector<Value> list;                // kIn, kNotIn: the literal items
  std::shared_ptr<const re2::RE2> regex;  // kMatches: compiled, never null once checked
  std::string pattern;                    // kMatches: the pattern as written
  std::string segment;                    // kInSegment: the referenced segment id
  uint32_t segment_slot = kUnbound;       // kInSegment: bound per shard

  AggregateFn fn = AggregateFn::kCount;  // kAggregate
  Selector selector;                     // kAggregate: the matched events
  std::string property;                  // kAggregate with T.p: the property name
  uint32_t property_id = kUnbound;       // kAggregate with T.p: bound per shard

  std::vector<Selector> steps;  // kSequence: the steps, each with an optional where
  int64_t within_ms = -1;       // kSequence: -1 when absent

  // kCompare with now() on one side (set by the checker): which side holds now()
  // (-1: neither), and the shape of that side: 0 for bare `now()`, +1 for
  // `now() + E` or `E + now()`, -1 for `now() - E`; now_offset_child is the index of E
  // among that side's children (-1 for bare now(); kNowOffsetIsPrefix when the side is
  // a kArith chain `E... + now()` whose E is every operand but the last).
  int8_t now_side = -1;
  int8_t now_sign = 0;
  int8_t now_offset_child = -1;

  // kCompare of `count(...)` or `count_distinct(...)` with a number literal, either way
  // round (set by the checker): which side holds the count (-1: neither), and the count
  // from which on the comparison has the same result for every greater count, so that
  // the evaluator may stop counting there.
  int8_t counted_side = -1;
  uint64_t count_cap = 0;

  std::vector<std::unique_ptr<Expr>> children;

  // kStartsWith, kEndsWith, kContains and kMatches with a literal pattern: the result
  // for each interned string value tested so far, by value id (0: not yet, 1: false,
  // 2: true), so that a predicate over a history reads no string twice. Interned ids
  // belong to a shard, as the bindings do: a rule bound to a shard is evaluated by its
  // thread only.
  mutable std::vector<uint8_t> results_by_value;
};

// What a rule reads, so that an update re-evaluates only the segments it can affect.
struct RuleInfo {
  absl::flat_hash_set<std::string> attributes;   // attribute names read (has() too)
  absl::flat_hash_set<std::string> event_types;  // event types selected (not "*")
  bool any_event_type = false;                   // some selector is "*"
  absl::flat_hash_set<std::string> segments;     // in_segment references
  bool reads_now = false;                        // now() appears somewhere
  bool reads_events = false;                     // any selector or sequence
  // Membership can change with no update: any event selector (windows, retention)
  // or now().
  bool time_dependent() const { return reads_now || reads_events; }
};

// The highest count_cap of a count_distinct: below it, each new value is compared with
// every one kept.
inline constexpr uint64_t kMaxCappedDistinct = 16;

// Limits of SPEC §3.
inline constexpr size_t kMaxRuleBytes = 16 * 1024;
inline constexpr int kMaxRuleDepth = 64;

// Parses and checks a rule (SPEC §3): syntax, limits, the bool-yield check, where-
// predicate restrictions, the placement of now(), regex validity. Segment references
// are not resolved here (the engine checks them against its catalog). On error:
// INVALID_ARGUMENT whose message starts "line:column: ".
absl::StatusOr<std::unique_ptr<Expr>> ParseRule(std::string_view text);

// Parses a funnel step, `type [where pred]` (SPEC §5 FunnelRequest), with the same
// checks as a sequence step inside a rule.
absl::StatusOr<Selector> ParseFunnelStep(std::string_view text);

// Every diagnostic of a rule for ValidateRule: empty when the rule is valid. The first
// is the one ParseRule reports.
struct Diagnostic {
  Position pos;
  std::string message;  // without the "line:column: " prefix
};
std::vector<Diagnostic> ValidateRule(std::string_view text);

// A duration in the rule language's syntax (`90d`, `500ms`), in ms; for flags.
absl::StatusOr<int64_t> ParseDuration(std::string_view text);

// A deep copy (the shard binds its own copy's ids).
std::unique_ptr<Expr> CloneExpr(const Expr& e);
Selector CloneSelector(const Selector& s);

RuleInfo CollectRuleInfo(const Expr& rule);

// Whether `e` reads nothing but attributes: no event selector or sequence, no
// in_segment, no now(). Its value then changes only when an update changes the
// profile's attributes, never as time passes.
bool ReadsOnlyAttributes(const Expr& e);

// Calls f(expr) on every expression of the tree, where predicates included, parents
// before children.
template <typename F>
void VisitExprs(Expr& e, const F& f) {
  f(e);
  if (e.selector.where) VisitExprs(*e.selector.where, f);
  for (Selector& s : e.steps) {
    if (s.where) VisitExprs(*s.where, f);
  }
  for (auto& c : e.children) VisitExprs(*c, f);
}

}  // namespace segd
