#include "core/rule_checker.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace segd {
namespace {

// The kinds of value an expression can have, as a bit set.
enum KindBits : unsigned {
  kBoolBit = 1,
  kNumberBit = 2,
  kStringBit = 4,
  kListBit = 8,
  kAnyBits = 15,
};

unsigned PossibleKinds(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kLiteral:
      switch (e.literal.kind()) {
        case ValueKind::kString:
          return kStringBit;
        case ValueKind::kBool:
          return kBoolBit;
        case ValueKind::kList:
          return kListBit;
        default:
          return kNumberBit;
      }
    case ExprKind::kName:
      return kAnyBits;
    case ExprKind::kNow:
    case ExprKind::kAdd:
    case ExprKind::kSub:
    case ExprKind::kMul:
    case ExprKind::kDiv:
    case ExprKind::kArith:
    case ExprKind::kNeg:
      return kNumberBit;
    case ExprKind::kAggregate:
      return e.fn == AggregateFn::kDid ? kBoolBit : kNumberBit;
    default:
      return kBoolBit;  // has, in_segment, and/or/not, comparisons, sequence
  }
}

absl::string_view KindPhrase(unsigned kinds) {
  switch (kinds) {
    case kNumberBit:
      return "a number";
    case kStringBit:
      return "a string";
    case kListBit:
      return "a list";
    default:
      return "not a bool";
  }
}

absl::string_view AggregateName(AggregateFn fn) {
  switch (fn) {
    case AggregateFn::kCount:
      return "count";
    case AggregateFn::kDid:
      return "did";
    case AggregateFn::kFirst:
      return "first";
    case AggregateFn::kLast:
      return "last";
    case AggregateFn::kSum:
      return "sum";
    case AggregateFn::kAvg:
      return "avg";
    case AggregateFn::kMin:
      return "min";
    case AggregateFn::kMax:
      return "max";
    case AggregateFn::kCountDistinct:
      return "count_distinct";
  }
  return "?";
}

// Shortens an expression's text for a message, at a code point boundary.
std::string Excerpt(absl::string_view text) {
  constexpr size_t kMax = 60;
  if (text.size() <= kMax) return std::string(text);
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
  return absl::StrCat(text.substr(0, cut), "...");
}

bool ContainsNow(const Expr& e) {
  if (e.kind == ExprKind::kNow) return true;
  for (const auto& c : e.children) {
    if (ContainsNow(*c)) return true;
  }
  // Selectors' where predicates are separate scopes: a now() there is checked there.
  return false;
}

constexpr std::string_view kNowPlacement =
    "now() may appear only as one whole side of a comparison, as now(), now() + E, "
    "now() - E or E + now()";

// Where a predicate sits, for the bool-yield message.
enum class Scope { kRule, kWhere, kFunnelStep };

class Checker {
 public:
  std::vector<Diagnostic> Finish() {
    std::stable_sort(diags_.begin(), diags_.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return a.pos.line != b.pos.line ? a.pos.line < b.pos.line : a.pos.column < b.pos.column;
    });
    return std::move(diags_);
  }

  // A rule, a where predicate or a funnel step predicate: the bool-yield check, then
  // everything inside.
  void CheckPredicate(Expr& e, Scope scope) {
    const unsigned kinds = PossibleKinds(e);
    if ((kinds & kBoolBit) == 0) {
      absl::string_view what = scope == Scope::kRule    ? "a rule"
                               : scope == Scope::kWhere ? "a where predicate"
                                                        : "a funnel step's predicate";
      Add(e.pos, absl::StrCat(what, " must be able to yield a bool, but `", Excerpt(e.text),
                              "` is always ", KindPhrase(kinds)));
    }
    Walk(e, scope != Scope::kRule);
  }

 private:
  void Add(Position pos, std::string message) {
    diags_.push_back(Diagnostic{pos, std::move(message)});
  }

  void CheckWhere(Selector& s) {
    if (s.where) CheckPredicate(*s.where, Scope::kWhere);
  }

  void Walk(Expr& e, bool in_where) {
    switch (e.kind) {
      case ExprKind::kNow:
        Add(e.pos, std::string(kNowPlacement));
        return;
      case ExprKind::kInSegment:
        if (in_where) {
          Add(e.pos,
              "in_segment() is not allowed inside a where predicate: it tests the profile, "
              "not the event");
        }
        return;
      case ExprKind::kAggregate:
        if (in_where) {
          Add(e.pos, absl::StrCat("aggregate ", AggregateName(e.fn),
                                  "() is not allowed inside a where predicate"));
        }
        CheckWhere(e.selector);
        return;
      case ExprKind::kSequence:
        if (in_where) Add(e.pos, "aggregate sequence() is not allowed inside a where predicate");
        for (Selector& s : e.steps) CheckWhere(s);
        return;
      case ExprKind::kCompare:
        WalkCompare(e, in_where);
        return;
      default:
        for (auto& c : e.children) Walk(*c, in_where);
        return;
    }
  }

  // Recognizes a comparison side of the form now(), now() + E, now() - E or E + now()
  // with no now() in E. Returns false for any other side.
  static bool NowForm(const Expr& side, int8_t* sign, int8_t* offset_child) {
    if (side.kind == ExprKind::kNow) {
      *sign = 0;
      *offset_child = -1;
      return true;
    }
    if (side.kind == ExprKind::kArith) {  // E1 + E2 ... + now(), with E the whole prefix
      const size_t n = side.children.size();
      if (side.ops.back() != ExprKind::kAdd || side.children[n - 1]->kind != ExprKind::kNow) {
        return false;
      }
      for (size_t i = 0; i + 1 < n; ++i) {
        if (ContainsNow(*side.children[i])) return false;
      }
      *sign = 1;
      *offset_child = kNowOffsetIsPrefix;
      return true;
    }
    if (side.kind != ExprKind::kAdd && side.kind != ExprKind::kSub) return false;
    const Expr& l = *side.children[0];
    const Expr& r = *side.children[1];
    if (l.kind == ExprKind::kNow && !ContainsNow(r)) {
      *sign = side.kind == ExprKind::kAdd ? 1 : -1;
      *offset_child = 1;
      return true;
    }
    if (side.kind == ExprKind::kAdd && r.kind == ExprKind::kNow && !ContainsNow(l)) {
      *sign = 1;
      *offset_child = 0;
      return true;
    }
    return false;
  }

  // Sets e.counted_side and e.count_cap (see rule.h).
  static void SetCountCap(Expr& e) {
    e.counted_side = -1;
    e.count_cap = 0;
    for (int side = 0; side < 2; ++side) {
      const Expr& count = *e.children[side];
      const Expr& other = *e.children[1 - side];
      if (count.kind != ExprKind::kAggregate || other.kind != ExprKind::kLiteral) continue;
      if (count.fn != AggregateFn::kCount && count.fn != AggregateFn::kCountDistinct) continue;
      const Value& n = other.literal;
      double limit;
      if (n.kind() == ValueKind::kInt) {
        limit = static_cast<double>(n.int_value());
      } else if (n.kind() == ValueKind::kFloat) {
        limit = n.float_value();
      } else {
        return;
      }
      // Beyond this the literal is left to the whole count (and it stays exact as a double).
      if (!(std::abs(limit) < 1e15)) return;
      // As `count op limit`: with the count on the right, the operator mirrored.
      const CompareOp op = side == 0 ? e.op : Mirrored(e.op);
      // `>=` and `<` turn at ceil(limit); `>`, `<=`, `=` and `!=` at floor(limit) + 1, the
      // least count above the limit. From there on every count gives the same result.
      const double turn =
          op == CompareOp::kGe || op == CompareOp::kLt ? std::ceil(limit) : std::floor(limit) + 1;
      const uint64_t cap = turn < 1 ? 1 : static_cast<uint64_t>(turn);
      // Distinct values are told apart by comparing with each kept one: few only.
      if (count.fn == AggregateFn::kCountDistinct && cap > kMaxCappedDistinct) return;
      e.counted_side = static_cast<int8_t>(side);
      e.count_cap = cap;
      return;
    }
  }

  // `b op a` as `a op' b`.
  static CompareOp Mirrored(CompareOp op) {
    switch (op) {
      case CompareOp::kLt:
        return CompareOp::kGt;
      case CompareOp::kLe:
        return CompareOp::kGe;
      case CompareOp::kGt:
        return CompareOp::kLt;
      case CompareOp::kGe:
        return CompareOp::kLe;
      default:
        return op;  // = and != are symmetric
    }
  }

  void WalkCompare(Expr& e, bool in_where) {
    SetCountCap(e);
    e.now_side = -1;
    e.now_sign = 0;
    e.now_offset_child = -1;
    for (int side = 0; side < 2; ++side) {
      Expr& s = *e.children[side];
      int8_t sign, offset_child;
      if (NowForm(s, &sign, &offset_child)) {
        if (e.now_side >= 0) {
          const Expr& now = s.kind == ExprKind::kNow ? s
                            : offset_child == kNowOffsetIsPrefix
                                ? *s.children.back()
                                : *s.children[offset_child == 1 ? 0 : 1];
          Add(now.pos, "now() may appear on only one side of a comparison");
          continue;
        }
        e.now_side = static_cast<int8_t>(side);
        e.now_sign = sign;
        e.now_offset_child = offset_child;
        if (offset_child >= 0) Walk(*s.children[offset_child], in_where);
        if (offset_child == kNowOffsetIsPrefix) {
          for (size_t i = 0; i + 1 < s.children.size(); ++i) Walk(*s.children[i], in_where);
        }
      } else {
        Walk(s, in_where);
      }
    }
  }

  std::vector<Diagnostic> diags_;
};

}  // namespace

std::vector<Diagnostic> CheckRule(Expr& rule) {
  Checker checker;
  checker.CheckPredicate(rule, Scope::kRule);
  return checker.Finish();
}

std::vector<Diagnostic> CheckFunnelStep(Selector& step) {
  Checker checker;
  if (step.where) checker.CheckPredicate(*step.where, Scope::kFunnelStep);
  return checker.Finish();
}

}  // namespace segd
