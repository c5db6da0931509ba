#include "core/evaluator.h"

#include <algorithm>
#include <cmath>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/text.h"
#include "re2/re2.h"

namespace segd {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kInt64Max : kInt64Min;
  return r;
}

double ToDouble(const Val& v) { return v.kind == ValKind::kInt ? static_cast<double>(v.i) : v.f; }

// Exact three-way comparison of an int and a (non-NaN) double.
int CompareIntDouble(int64_t i, double d) {
  if (d >= 9223372036854775808.0) return -1;  // 2^63: above every int64
  if (d < -9223372036854775808.0) return 1;
  const double t = std::trunc(d);
  const int64_t ti = static_cast<int64_t>(t);
  if (i != ti) return i < ti ? -1 : 1;
  const double frac = d - t;  // exact
  return frac > 0 ? -1 : (frac < 0 ? 1 : 0);
}

// Exact three-way comparison of two numbers (int or float, never NaN).
int CompareNumbers(const Val& a, const Val& b) {
  if (a.kind == ValKind::kInt && b.kind == ValKind::kInt) return a.i < b.i ? -1 : (a.i > b.i);
  if (a.kind == ValKind::kInt) return CompareIntDouble(a.i, b.f);
  if (b.kind == ValKind::kInt) return -CompareIntDouble(b.i, a.f);
  return a.f < b.f ? -1 : (a.f > b.f);
}

bool OrderHolds(int cmp, CompareOp op) {
  switch (op) {
    case CompareOp::kEq:
      return cmp == 0;
    case CompareOp::kNe:
      return cmp != 0;
    case CompareOp::kLt:
      return cmp < 0;
    case CompareOp::kLe:
      return cmp <= 0;
    case CompareOp::kGt:
      return cmp > 0;
    case CompareOp::kGe:
      return cmp >= 0;
  }
  return false;
}

bool ListsEqual(const Val& a, const Val& b) {
  if (a.n_items != b.n_items) return false;
  for (uint32_t k = 0; k < a.n_items; ++k) {
    if (a.items[k] != b.items[k]) return false;
  }
  return true;
}

Val Arithmetic(ExprKind kind, const Val& a, const Val& b) {
  if (!a.is_number() || !b.is_number()) return Val::Missing();
  if (kind == ExprKind::kDiv) {
    const double y = ToDouble(b);
    if (y == 0) return Val::Missing();
    const double r = ToDouble(a) / y;
    return std::isnan(r) ? Val::Missing() : Val::Float(r);
  }
  if (a.kind == ValKind::kInt && b.kind == ValKind::kInt) {
    int64_t r;
    bool overflow = false;
    switch (kind) {
      case ExprKind::kAdd:
        overflow = __builtin_add_overflow(a.i, b.i, &r);
        break;
      case ExprKind::kSub:
        overflow = __builtin_sub_overflow(a.i, b.i, &r);
        break;
      default:
        overflow = __builtin_mul_overflow(a.i, b.i, &r);
        break;
    }
    return overflow ? Val::Missing() : Val::Int(r);
  }
  const double x = ToDouble(a), y = ToDouble(b);
  double r;
  switch (kind) {
    case ExprKind::kAdd:
      r = x + y;
      break;
    case ExprKind::kSub:
      r = x - y;
      break;
    default:
      r = x * y;
      break;
  }
  return std::isnan(r) ? Val::Missing() : Val::Float(r);
}

// A total order on scalar values in which values equal under `=` are adjacent and
// compare equal: numbers first (exactly), then strings, then bools.
int CompareForDistinct(const Val& a, const Val& b) {
  auto rank = [](const Val& v) { return v.is_number() ? 0 : (v.kind == ValKind::kString ? 1 : 2); };
  const int ra = rank(a), rb = rank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  if (ra == 0) return CompareNumbers(a, b);
  if (ra == 1) return a.s.compare(b.s) < 0 ? -1 : (a.s == b.s ? 0 : 1);
  return a.b == b.b ? 0 : (a.b ? 1 : -1);
}

bool SameScalar(const Val& a, const Val& b) {
  if (a.kind == ValKind::kString && b.kind == ValKind::kString) {
    if (a.interned && b.interned) return a.s.data() == b.s.data();
    return a.s == b.s;
  }
  return CompareForDistinct(a, b) == 0;
}

// Values of a count_distinct, inline up to 16: evaluated on most updates (a page view
// re-evaluates multi_category), it should not allocate.
using DistinctVals = absl::InlinedVector<Val, 16>;

// Whether `v` equals none of `seen` under `=`.
bool IsNew(const DistinctVals& seen, const Val& v) {
  return std::none_of(seen.begin(), seen.end(), [&](const Val& s) { return SameScalar(s, v); });
}

// The number of distinct values (equal under `=` counts once). Few values, or few
// distinct ones, are the common case: compare against those seen so far, then sort.
int64_t CountDistinct(DistinctVals* values) {
  constexpr size_t kLinear = 16;
  DistinctVals seen;
  for (const Val& v : *values) {
    if (IsNew(seen, v)) {
      if (seen.size() == kLinear) {
        std::sort(values->begin(), values->end(),
                  [](const Val& a, const Val& b) { return CompareForDistinct(a, b) < 0; });
        int64_t unique = 0;
        for (size_t k = 0; k < values->size(); ++k) {
          if (k == 0 || CompareForDistinct((*values)[k - 1], (*values)[k]) != 0) ++unique;
        }
        return unique;
      }
      seen.push_back(v);
    }
  }
  return static_cast<int64_t>(seen.size());
}

}  // namespace

Val LiteralVal(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kString:
      return Val::String(v.string_value());
    case ValueKind::kInt:
      return Val::Int(v.int_value());
    case ValueKind::kFloat:
      return Val::Float(v.float_value());
    case ValueKind::kBool:
      return Val::Bool(v.bool_value());
    case ValueKind::kTime:
      return Val::Int(v.time_value());
    case ValueKind::kList:
      return Val::Missing();  // no list literals in the language
  }
  return Val::Missing();
}

bool CompareVals(const Val& a, CompareOp op, const Val& b) {
  if (a.missing() || b.missing()) return false;
  if (a.is_number() && b.is_number()) return OrderHolds(CompareNumbers(a, b), op);
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case ValKind::kString: {
      const int c = a.s.compare(b.s);  // bytewise: char_traits<char> compares as unsigned
      return OrderHolds(c < 0 ? -1 : (c > 0 ? 1 : 0), op);
    }
    case ValKind::kBool:
      if (op == CompareOp::kEq) return a.b == b.b;
      if (op == CompareOp::kNe) return a.b != b.b;
      return false;
    case ValKind::kList:
      if (op == CompareOp::kEq) return ListsEqual(a, b);
      if (op == CompareOp::kNe) return !ListsEqual(a, b);
      return false;
    default:
      return false;
  }
}

std::string ValToString(const Val& v) {
  switch (v.kind) {
    case ValKind::kMissing:
      return "missing";
    case ValKind::kString:
      return absl::StrCat("\"", AsAbsl(v.s), "\"");
    case ValKind::kInt:
      return absl::StrCat(v.i);
    case ValKind::kFloat:
      return absl::StrCat(v.f);
    case ValKind::kBool:
      return v.b ? "true" : "false";
    case ValKind::kList: {
      std::vector<std::string_view> items(v.items, v.items + v.n_items);
      return absl::StrCat("[",
                          absl::StrJoin(items, ", ",
                                        [](std::string* out, std::string_view s) {
                                          absl::StrAppend(out, "\"", AsAbsl(s), "\"");
                                        }),
                          "]");
    }
  }
  return "?";
}

int64_t Evaluator::WindowLength(int64_t within_ms) const {
  return within_ms >= 0 ? std::min(within_ms, retention_ms_) : retention_ms_;
}

int64_t Evaluator::WindowBound(int64_t within_ms) const {
  return SaturatingAdd(now_, -WindowLength(within_ms));
}

bool Evaluator::EventMatches(const Selector& s, size_t i) {
  if (!s.any_type && p_.event_type(i) != s.type_id) return false;
  if (s.where == nullptr) return true;
  const size_t saved = event_;
  event_ = i;
  const bool match = Eval(*s.where).is_true();
  event_ = saved;
  return match;
}

template <typename Predicate>
bool Evaluator::StringTest(const Expr& e, const Val& a, const Predicate& test) {
  // Ids past this are tested each time rather than remembered (a byte per id).
  constexpr uint32_t kMaxRememberedId = 1 << 20;
  const bool literal_pattern =
      e.kind == ExprKind::kMatches || e.children[1]->kind == ExprKind::kLiteral;
  if (!a.interned || !literal_pattern || a.value_id >= kMaxRememberedId) return test();
  std::vector<uint8_t>& results = e.results_by_value;
  if (a.value_id >= results.size()) {
    results.resize(std::max<size_t>(a.value_id + 1, 2 * results.size()), 0);
  }
  uint8_t& result = results[a.value_id];
  if (result == 0) result = test() ? 2 : 1;
  return result == 2;
}

Val Evaluator::Eval(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kLiteral:
      return LiteralVal(e.literal);
    case ExprKind::kName:
      if (e.name_id == kUnbound) return Val::Missing();
      return e.is_property ? p_.EventProp(event_, e.name_id) : p_.Attr(e.name_id);
    case ExprKind::kHas:
      if (e.name_id == kUnbound) return Val::Bool(false);
      return Val::Bool(
          !(e.is_property ? p_.EventProp(event_, e.name_id) : p_.Attr(e.name_id)).missing());
    case ExprKind::kNow:
      return Val::Int(now_);
    case ExprKind::kInSegment:
      return Val::Bool(segments_ != nullptr && e.segment_slot != kUnbound &&
                       segments_->IsMember(e.segment_slot));
    case ExprKind::kAnd:
      for (const auto& c : e.children) {
        if (!Eval(*c).is_true()) return Val::Bool(false);
      }
      return Val::Bool(true);
    case ExprKind::kOr:
      for (const auto& c : e.children) {
        if (Eval(*c).is_true()) return Val::Bool(true);
      }
      return Val::Bool(false);
    case ExprKind::kNot:
      return Val::Bool(!Eval(*e.children[0]).is_true());
    case ExprKind::kCompare:
      return EvalCompare(e);
    case ExprKind::kIn:
    case ExprKind::kNotIn: {
      const Val x = Eval(*e.children[0]);
      bool found = false;
      for (const Value& item : e.list) {
        if (CompareVals(x, CompareOp::kEq, LiteralVal(item))) {
          found = true;
          break;
        }
      }
      return Val::Bool(e.kind == ExprKind::kIn ? found : !found);
    }
    case ExprKind::kContains: {
      const Val a = Eval(*e.children[0]);
      const Val b = Eval(*e.children[1]);
      if (b.kind != ValKind::kString) return Val::Bool(false);
      if (a.kind == ValKind::kString) {
        return Val::Bool(
            StringTest(e, a, [&] { return a.s.find(b.s) != std::string_view::npos; }));
      }
      if (a.kind == ValKind::kList) {
        return Val::Bool(std::find(a.items, a.items + a.n_items, b.s) != a.items + a.n_items);
      }
      return Val::Bool(false);
    }
    case ExprKind::kStartsWith:
    case ExprKind::kEndsWith: {
      const Val a = Eval(*e.children[0]);
      const Val b = Eval(*e.children[1]);
      if (a.kind != ValKind::kString || b.kind != ValKind::kString) return Val::Bool(false);
      return Val::Bool(StringTest(e, a, [&] {
        return e.kind == ExprKind::kStartsWith ? a.s.starts_with(b.s) : a.s.ends_with(b.s);
      }));
    }
    case ExprKind::kMatches: {
      const Val a = Eval(*e.children[0]);
      if (a.kind != ValKind::kString || e.regex == nullptr) return Val::Bool(false);
      return Val::Bool(StringTest(e, a, [&] { return RE2::PartialMatch(a.s, *e.regex); }));
    }
    case ExprKind::kAdd:
    case ExprKind::kSub:
    case ExprKind::kMul:
    case ExprKind::kDiv:
      return Arithmetic(e.kind, Eval(*e.children[0]), Eval(*e.children[1]));
    case ExprKind::kArith:
      return FoldArith(e, e.children.size());
    case ExprKind::kNeg: {
      const Val a = Eval(*e.children[0]);
      if (a.kind == ValKind::kFloat) return Val::Float(-a.f);
      if (a.kind == ValKind::kInt && a.i != kInt64Min) return Val::Int(-a.i);
      return Val::Missing();
    }
    case ExprKind::kAggregate:
      return EvalAggregate(e);
    case ExprKind::kSequence:
      return Val::Bool(MatchSequence(e.steps, e.within_ms) == e.steps.size());
  }
  return Val::Missing();
}

Val Evaluator::FoldArith(const Expr& e, size_t n) {
  Val acc = Eval(*e.children[0]);
  for (size_t i = 1; i < n; ++i) acc = Arithmetic(e.ops[i - 1], acc, Eval(*e.children[i]));
  return acc;
}

// A capped count decides the comparison as the whole count would (rule.h). Scanning
// newest to oldest, its last match is the one whose leaving the window can first bring
// the count below the cap (events only leave; new ones come with updates, which
// re-evaluate), so that is when it may change.
Val Evaluator::EvalCompare(const Expr& e) {
  const Val a =
      e.counted_side == 0 ? EvalAggregate(*e.children[0], e.count_cap) : Eval(*e.children[0]);
  const Val b =
      e.counted_side == 1 ? EvalAggregate(*e.children[1], e.count_cap) : Eval(*e.children[1]);
  if (e.now_side >= 0 && next_due_ != nullptr) {
    const Expr& side = *e.children[e.now_side];
    const Val offset = e.now_offset_child >= 0 ? Eval(*side.children[e.now_offset_child])
                       : e.now_offset_child == kNowOffsetIsPrefix
                           ? FoldArith(side, side.children.size() - 1)
                           : Val::Int(0);
    NowCandidates(e, e.now_side == 0 ? b : a, offset);
  }
  return Val::Bool(CompareVals(a, e.op, b));
}

// The now() side is f(t) = t + sign * offset; the comparison can only change where
// f(t) crosses the other side, or where int arithmetic in f starts or stops
// overflowing. Both are found exactly enough by trying the integers around them.
void Evaluator::NowCandidates(const Expr& e, const Val& other, const Val& offset) {
  if (!other.is_number() || !offset.is_number()) return;
  const int sign = e.now_sign;
  const long double o = other.kind == ValKind::kInt ? static_cast<long double>(other.i) : other.f;
  const long double off =
      offset.kind == ValKind::kInt ? static_cast<long double>(offset.i) : offset.f;
  const long double t0 = o - sign * off;
  auto candidate = [this](long double t) {
    if (std::isfinite(t) && t > static_cast<long double>(now_) && t < 9.2e18L) {
      Candidate(static_cast<int64_t>(t));
    }
  };
  candidate(std::floor(t0));
  candidate(std::floor(t0) + 1);
  candidate(std::ceil(t0));
  if (sign != 0 && offset.kind == ValKind::kInt) {
    const __int128 shift = static_cast<__int128>(sign) * offset.i;
    const __int128 first_valid = static_cast<__int128>(kInt64Min) - shift;
    const __int128 first_overflow = static_cast<__int128>(kInt64Max) - shift + 1;
    for (__int128 t : {first_valid, first_overflow}) {
      if (t > now_ && t <= kInt64Max) Candidate(static_cast<int64_t>(t));
    }
  }
}

Val Evaluator::EvalAggregate(const Expr& e, uint64_t cap) {
  const Selector& s = e.selector;
  const int64_t window = WindowLength(s.within_ms);
  const int64_t bound = WindowBound(s.within_ms);
  const size_t n = p_.num_events();

  if (e.fn == AggregateFn::kDid || e.fn == AggregateFn::kLast) {
    // The newest match decides; it also leaves the window last.
    for (size_t i = n; i-- > 0 && p_.event_time(i) > bound;) {
      if (EventMatches(s, i)) {
        Candidate(SaturatingAdd(p_.event_time(i), window));
        return e.fn == AggregateFn::kDid ? Val::Bool(true) : Val::Int(p_.event_time(i));
      }
    }
    return e.fn == AggregateFn::kDid ? Val::Bool(false) : Val::Missing();
  }

  uint64_t count = 0;  // matching events (for sum-like functions: with a numeric value)
  int64_t oldest = 0;
  __int128 int_sum = 0;
  double float_sum = 0;
  bool any_float = false;
  Val best;
  DistinctVals distinct;
  bool matched = false;
  for (size_t i = n; i-- > 0 && p_.event_time(i) > bound;) {
    if (!EventMatches(s, i)) continue;
    matched = true;
    oldest = p_.event_time(i);
    if (e.fn == AggregateFn::kCount || e.fn == AggregateFn::kFirst) {
      if (++count == cap) break;
      continue;
    }
    const Val v = e.property_id == kUnbound ? Val::Missing() : p_.EventProp(i, e.property_id);
    if (e.fn == AggregateFn::kCountDistinct) {
      if (v.missing()) continue;
      if (cap == 0) {
        distinct.push_back(v);
      } else if (IsNew(distinct, v)) {
        distinct.push_back(v);
        if (distinct.size() == cap) break;
      }
      continue;
    }
    if (!v.is_number()) continue;
    ++count;
    if (v.kind == ValKind::kInt) {
      int_sum += v.i;
    } else {
      float_sum += v.f;
      any_float = true;
    }
    // Iterating newest to oldest, `<=` keeps the oldest of equal extremes.
    if (e.fn == AggregateFn::kMin && (best.missing() || CompareNumbers(v, best) <= 0)) best = v;
    if (e.fn == AggregateFn::kMax && (best.missing() || CompareNumbers(v, best) >= 0)) best = v;
  }
  if (matched) Candidate(SaturatingAdd(oldest, window));

  switch (e.fn) {
    case AggregateFn::kCount:
      return Val::Int(static_cast<int64_t>(count));
    case AggregateFn::kFirst:
      return count > 0 ? Val::Int(oldest) : Val::Missing();
    case AggregateFn::kSum:
      if (any_float) return Val::Float(static_cast<double>(int_sum) + float_sum);
      if (int_sum > kInt64Max || int_sum < kInt64Min) return Val::Missing();
      return Val::Int(static_cast<int64_t>(int_sum));
    case AggregateFn::kAvg:
      if (count == 0) return Val::Missing();
      return Val::Float((static_cast<double>(int_sum) + float_sum) / static_cast<double>(count));
    case AggregateFn::kMin:
    case AggregateFn::kMax:
      return best;
    case AggregateFn::kCountDistinct:  // with a cap, `distinct` holds distinct values
      return Val::Int(cap == 0 ? CountDistinct(&distinct) : static_cast<int64_t>(distinct.size()));
    default:
      return Val::Missing();
  }
}

size_t Evaluator::MatchSequence(std::span<const Selector> steps, int64_t within_ms,
                                uint64_t* scanned) {
  const int64_t bound = WindowBound(within_ms);
  const size_t n = p_.num_events();
  // The history is in time order: skip to the first event inside the window.
  size_t lo = 0, hi = n;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (p_.event_time(mid) > bound) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  size_t k = 0;
  int64_t first_time = 0;
  size_t i = lo;
  for (; i < n && k < steps.size(); ++i) {
    if (EventMatches(steps[k], i)) {
      if (k == 0) first_time = p_.event_time(i);
      ++k;
    }
  }
  if (scanned != nullptr) *scanned += i - lo;
  // Greedy matching uses the earliest events it can; the result can only change when
  // the first of them leaves the window (or a now()-dependent predicate turns).
  if (k > 0) Candidate(SaturatingAdd(first_time, WindowLength(within_ms)));
  return k;
}

ExplainResult Evaluator::Explain(const Expr& rule) {
  ExplainResult result;
  result.matched = Eval(rule).is_true();
  ExplainTerms(rule, 0, &result.terms);
  return result;
}

void Evaluator::ExplainTerms(const Expr& e, uint32_t depth, std::vector<ExplainTerm>* out) {
  out->push_back(ExplainTerm{e.text, ValToString(Eval(e)), depth});
  for (const auto& c : e.children) ExplainTerms(*c, depth + 1, out);
}

}  // namespace segd
