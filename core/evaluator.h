#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "core/profile_view.h"
#include "core/rule.h"

namespace segd {

inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// This profile's membership in the segment with the given slot, as the current
// evaluation should see it (in_segment).
class MembershipSource {
 public:
  virtual ~MembershipSource() = default;
  virtual bool IsMember(uint32_t segment_slot) const = 0;
};

struct ExplainTerm {
  std::string text;
  std::string value;
  uint32_t depth = 0;
};

struct ExplainResult {
  bool matched = false;
  std::vector<ExplainTerm> terms;
};

// Evaluates bound rules (ids resolved by a shard) over one profile at one moment,
// with the semantics of SPEC §3. An evaluation never fails: whatever has no result is
// a missing value.
//
// Exact time: when constructed with `next_due`, every evaluation lowers *next_due to
// the earliest moment after `now` at which the evaluated result may change with no
// update (an event leaving a window or retention, a now() comparison turning). The
// moments found are candidates: at each the result may or may not change, but it
// never changes between now and the earliest of them.
class Evaluator {
 public:
  // REQUIRES: profile and segments outlive the evaluator; the rule is bound to the
  // shard that filled `profile`.
  Evaluator(const ProfileView& profile, int64_t now, int64_t retention_ms,
            const MembershipSource* segments, int64_t* next_due = nullptr)
      : p_(profile),
        now_(now),
        retention_ms_(retention_ms),
        segments_(segments),
        next_due_(next_due) {}

  Val Eval(const Expr& e);
  bool Test(const Expr& rule) { return Eval(rule).is_true(); }

  // How many leading steps of `steps` match in order (greedy) among the events with
  // time > now - within (within_ms < 0: no window); steps.size() when the whole
  // sequence matches. `scanned` (if not null) is increased by the events looked at.
  size_t MatchSequence(std::span<const Selector> steps, int64_t within_ms,
                       uint64_t* scanned = nullptr);

  // Every sub-expression of `rule` with its value, parents before children.
  ExplainResult Explain(const Expr& rule);

  // Whether event i has the selector's type and satisfies its where predicate (its
  // window is not tested).
  bool EventMatches(const Selector& s, size_t i);

 private:
  Val EvalCompare(const Expr& e);
  // The left fold of the first n operands of a kArith chain.
  Val FoldArith(const Expr& e, size_t n);
  // `cap` > 0 (count and count_distinct only): stop counting at `cap` (Expr::count_cap).
  Val EvalAggregate(const Expr& e, uint64_t cap = 0);
  // test() of string predicate `e` on its string operand `a`; for an interned value
  // and a literal pattern, remembered in e.results_by_value.
  template <typename Predicate>
  bool StringTest(const Expr& e, const Val& a, const Predicate& test);
  void Candidate(int64_t t) {
    if (next_due_ != nullptr && t > now_ && t < *next_due_) *next_due_ = t;
  }
  // Events with time <= bound are outside the window (now - effective window).
  int64_t WindowBound(int64_t within_ms) const;
  int64_t WindowLength(int64_t within_ms) const;
  void NowCandidates(const Expr& e, const Val& other, const Val& offset);
  void ExplainTerms(const Expr& e, uint32_t depth, std::vector<ExplainTerm>* out);

  const ProfileView& p_;
  const int64_t now_;
  const int64_t retention_ms_;
  const MembershipSource* segments_;
  int64_t* next_due_;
  size_t event_ = 0;  // the event a `where` predicate is evaluated for
};

// Value semantics shared with queries and tests.
// `a op b` per SPEC §3: missing or mismatched kinds are false.
bool CompareVals(const Val& a, CompareOp op, const Val& b);
// The rendering Explain uses: `missing`, `true`, `42`, `1.5`, `"DK"`, `["a", "b"]`.
std::string ValToString(const Val& v);
// The literal as a Val (a view into the Value).
Val LiteralVal(const Value& v);

}  // namespace segd
