// segctl segment put|get|list|delete|validate: segment definitions, broadcast to every
// shard (SPEC §6) and gathered back with the cluster's member counts.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/segctl/command.h"
#include "client/segctl/output.h"

namespace segd::segctl {
namespace {

// The rule of a command: its positional argument `index`, or the file of --file; exactly
// one of the two.
absl::StatusOr<std::string> RuleArgument(const Context& c, size_t index) {
  const std::optional<std::string> file = c.args().Get("file");
  const bool positional = c.positional().size() > index;
  if (file.has_value() == positional) {
    return absl::InvalidArgumentError("give the rule either as an argument or with --file FILE");
  }
  if (positional) return c.positional()[index];
  return ReadText(*file);
}

// A rule on one line, for tables: runs of whitespace become one space; long rules are cut.
std::string OneLine(const std::string& rule) {
  std::string out;
  for (char ch : rule) {
    const bool space = ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r';
    if (space) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += ch;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  constexpr size_t kMax = 80;
  if (out.size() > kMax) {
    size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out = out.substr(0, cut) + "...";
  }
  return out;
}

// Prints a diagnostic with the rule line it points into and a caret under its column.
void PrintDiagnostic(const std::string& source, const std::string& rule, const v1::Diagnostic& d) {
  std::fprintf(stdout, "%s%u:%u: %s\n", source.c_str(), d.line(), d.column(), d.message().c_str());
  const std::vector<std::string> lines = absl::StrSplit(rule, '\n');
  if (d.line() == 0 || d.line() > lines.size()) return;
  const std::string& line = lines[d.line() - 1];
  std::string caret;
  uint32_t column = 1;
  for (size_t i = 0; i < line.size() && column < d.column(); ++i) {
    const unsigned char ch = static_cast<unsigned char>(line[i]);
    if ((ch & 0xC0) == 0x80) continue;  // a continuation byte: same code point
    caret += ch == '\t' ? '\t' : ' ';
    ++column;
  }
  std::fprintf(stdout, "  %s\n  %s^\n", line.c_str(), caret.c_str());
}

int Put(Context& c) {
  absl::StatusOr<std::string> rule = RuleArgument(c, 1);
  if (!rule.ok()) {
    return rule.status().code() == absl::StatusCode::kInvalidArgument
               ? c.Usage(std::string(rule.status().message()))
               : c.Fail(rule.status());
  }
  v1::PutSegmentRequest request;
  request.mutable_segment()->set_id(c.positional()[0]);
  request.mutable_segment()->set_rule(*rule);
  request.mutable_segment()->set_description(c.args().GetOr("description", ""));
  request.set_dry_run(c.args().Has("dry-run"));
  absl::StatusOr<v1::PutSegmentResponse> response = c.cluster().PutSegment(request);
  if (!response.ok()) return c.Fail(response.status());
  if (c.json()) {
    PrintJson(*response);
  } else if (request.dry_run()) {
    std::printf("dry run of %s: %s would enter, %s would exit (nothing was changed)\n",
                request.segment().id().c_str(), FormatCount(response->entered()).c_str(),
                FormatCount(response->exited()).c_str());
  } else {
    std::printf("put %s on %zu shards: %s entered, %s exited, %s members\n",
                request.segment().id().c_str(), c.servers().size(),
                FormatCount(response->entered()).c_str(), FormatCount(response->exited()).c_str(),
                FormatCount(response->segment().member_count()).c_str());
  }
  return kExitOk;
}

int Get(Context& c) {
  v1::GetSegmentRequest request;
  request.set_id(c.positional()[0]);
  absl::StatusOr<v1::Segment> segment = c.cluster().GetSegment(request);
  if (!segment.ok()) return c.Fail(segment.status());
  if (c.json()) {
    PrintJson(*segment);
    return kExitOk;
  }
  std::printf("id           %s\n", segment->id().c_str());
  const std::vector<std::string> lines = absl::StrSplit(segment->rule(), '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    std::printf("%s%s\n", i == 0 ? "rule         " : "             ", lines[i].c_str());
  }
  if (!segment->description().empty()) {
    std::printf("description  %s\n", segment->description().c_str());
  }
  std::printf("members      %s\n", FormatCount(segment->member_count()).c_str());
  std::printf("updated_at   %s\n", FormatTime(segment->updated_at()).c_str());
  return kExitOk;
}

int List(Context& c) {
  absl::StatusOr<v1::ListSegmentsResponse> list = c.cluster().ListSegments();
  if (!list.ok()) return c.Fail(list.status());
  if (c.json()) {
    for (const v1::Segment& segment : list->segments()) PrintJson(segment);
    return kExitOk;
  }
  if (list->segments().empty()) {
    std::printf("no segments\n");
    return kExitOk;
  }
  Table table({"ID", "MEMBERS", "UPDATED", "RULE"}, {1});
  for (const v1::Segment& s : list->segments()) {
    table.Add(
        {s.id(), FormatCount(s.member_count()), FormatTime(s.updated_at()), OneLine(s.rule())});
  }
  table.Print();
  return kExitOk;
}

int Delete(Context& c) {
  v1::DeleteSegmentRequest request;
  request.set_id(c.positional()[0]);
  absl::StatusOr<v1::DeleteSegmentResponse> response = c.cluster().DeleteSegment(request);
  if (!response.ok()) return c.Fail(response.status());
  if (c.json()) {
    PrintJson(*response);
  } else {
    std::printf("deleted %s: %s members exited\n", request.id().c_str(),
                FormatCount(response->exited()).c_str());
  }
  return kExitOk;
}

int Validate(Context& c) {
  absl::StatusOr<std::string> rule = RuleArgument(c, 0);
  if (!rule.ok()) {
    return rule.status().code() == absl::StatusCode::kInvalidArgument
               ? c.Usage(std::string(rule.status().message()))
               : c.Fail(rule.status());
  }
  v1::ValidateRuleRequest request;
  request.set_rule(*rule);
  absl::StatusOr<v1::ValidateRuleResponse> response = c.cluster().ValidateRule(request);
  if (!response.ok()) return c.Fail(response.status());
  if (c.json()) {
    PrintJson(*response);
  } else if (response->ok()) {
    std::printf("ok\n");
  } else {
    const std::optional<std::string> file = c.args().Get("file");
    const std::string source = file.has_value() && *file != "-" ? *file + ":" : "";
    for (const v1::Diagnostic& d : response->diagnostics()) PrintDiagnostic(source, *rule, d);
  }
  return response->ok() ? kExitOk : kExitFailed;
}

const FlagSpec kFileFlag = {"file", "FILE", "read the rule from FILE (- for stdin)"};

}  // namespace

std::vector<Command> SegmentCommands() {
  return {
      {{"segment", "put"},
       "ID [RULE]",
       "create or replace a segment on every shard",
       "The rule is the argument RULE or the contents of --file. Every shard evaluates it over\n"
       "its profiles; the output counts the profiles that entered and exited the segment\n"
       "(not its dependents) and its members across the cluster. With --dry-run nothing\n"
       "changes: the counts say what the put would do.\n"
       "A rule that does not parse or check fails with INVALID_ARGUMENT and its line:column.\n\n"
       "  segctl segment put dk_mobile 'country = \"DK\" and device in [\"ios\", \"android\"]'\n"
       "  segctl segment put big_spender --file big_spender.rule --dry-run\n",
       {kFileFlag,
        {"description", "TEXT", "a description stored with the segment"},
        {"dry-run", "", "check and count only; change nothing"}},
       1,
       2,
       true,
       Put},
      {{"segment", "get"},
       "ID",
       "show a segment: its rule and its members across the cluster",
       "NOT_FOUND (exit 1) if a shard lacks the segment. --json prints the Segment message.\n",
       {},
       1,
       1,
       true,
       Get},
      {{"segment", "list"},
       "",
       "list the segments, with member counts across the cluster",
       "--json prints one Segment message per line: the format `segctl recover --segments`\n"
       "reads back.\n",
       {},
       0,
       0,
       true,
       List},
      {{"segment", "delete"},
       "ID",
       "delete a segment on every shard",
       "Every member exits. FAILED_PRECONDITION (exit 1) if another segment's rule refers to\n"
       "it with in_segment. A shard that lacks it counts as done, so a delete that failed\n"
       "part-way can be repeated.\n",
       {},
       1,
       1,
       true,
       Delete},
      {{"segment", "validate"},
       "[RULE]",
       "check a rule without storing it",
       "Prints \"ok\", or each problem as line:column: message under the rule line it points\n"
       "at, and exits 1. The rule is the argument RULE or the contents of --file.\n",
       {kFileFlag},
       0,
       1,
       true,
       Validate},
  };
}

}  // namespace segd::segctl
