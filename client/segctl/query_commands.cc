// segctl profile get, members, count, funnel, explain: the queries of SPEC §5, routed to
// a key's shard or gathered from every shard.
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/segctl/command.h"
#include "client/segctl/output.h"
#include "client/segctl/progress.h"

namespace segd::segctl {
namespace {

// The rule of --rule / --file / the positional argument `index`: exactly one of them.
absl::StatusOr<std::string> AdHocRule(const Context& c, std::optional<size_t> index) {
  std::vector<std::string> given;
  std::string rule;
  if (index.has_value() && c.positional().size() > *index) {
    given.push_back("RULE");
    rule = c.positional()[*index];
  }
  if (std::optional<std::string> r = c.args().Get("rule")) {
    given.push_back("--rule");
    rule = *r;
  }
  if (std::optional<std::string> file = c.args().Get("file")) {
    given.push_back("--file");
    absl::StatusOr<std::string> text = ReadText(*file);
    if (!text.ok()) return text.status();
    rule = *std::move(text);
  }
  if (given.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("give one rule, not ", absl::StrJoin(given, " and ")));
  }
  if (given.empty()) return absl::InvalidArgumentError("no rule given");
  return rule;
}

int RuleError(const Context& c, const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument
             ? c.Usage(std::string(status.message()))
             : c.Fail(status);
}

std::string Properties(const google::protobuf::Map<std::string, v1::Value>& properties) {
  std::map<std::string, const v1::Value*> sorted;
  for (const auto& [name, value] : properties) sorted.emplace(name, &value);
  std::vector<std::string> parts;
  for (const auto& [name, value] : sorted)
    parts.push_back(absl::StrCat(name, "=", FormatValue(*value)));
  return absl::StrJoin(parts, " ");
}

int ProfileGet(Context& c) {
  v1::GetProfileRequest request;
  request.set_key(c.positional()[0]);
  absl::StatusOr<v1::Profile> profile = c.cluster().GetProfile(request);
  if (!profile.ok()) return c.Fail(profile.status());
  if (c.json()) {
    PrintJson(*profile);
    return kExitOk;
  }
  std::printf("key       %s\n", profile->key().c_str());
  std::printf("shard     %s\n", c.cluster().ring().ServerOf(profile->key()).c_str());
  std::printf("segments  %s\n", profile->segments().empty()
                                    ? "(none)"
                                    : absl::StrJoin(profile->segments(), ", ").c_str());
  std::printf("\nattributes (%d)\n", profile->attributes_size());
  if (profile->attributes_size() > 0) {
    std::map<std::string, const v1::Value*> sorted;
    for (const auto& [name, value] : profile->attributes()) sorted.emplace(name, &value);
    Table table({"NAME", "KIND", "VALUE"});
    for (const auto& [name, value] : sorted)
      table.Add({name, ValueKind(*value), FormatValue(*value)});
    table.Print();
  }
  std::printf("\nevents (%d)\n", profile->events_size());
  if (profile->events_size() > 0) {
    Table table({"TIME", "TYPE", "ID", "PROPERTIES"});
    for (const v1::Event& e : profile->events()) {
      table.Add({FormatTime(e.time()), e.type(), e.id(), Properties(e.properties())});
    }
    table.Print();
  }
  return kExitOk;
}

int Members(Context& c) {
  v1::ListMembersRequest request;
  request.set_segment(c.positional()[0]);
  uint64_t limit = UINT64_MAX;
  if (std::optional<std::string> l = c.args().Get("limit")) {
    if (!absl::SimpleAtoi(*l, &limit)) return c.Usage("--limit: expected a number of keys");
  }
  Progress progress(c.progress(), "listed", "members");
  if (c.progress()) {
    v1::GetSegmentRequest get;
    get.set_id(request.segment());
    if (absl::StatusOr<v1::Segment> s = c.cluster().GetSegment(get); s.ok()) {
      progress.SetTotal(std::min(limit, s->member_count()));
    }
  }
  uint64_t listed = 0;
  absl::Status status = c.cluster().ListMembers(request, [&](v1::MemberBatch& batch) {
    for (const std::string& key : batch.keys()) {
      if (listed == limit) return absl::CancelledError("limit reached");
      std::fwrite(key.data(), 1, key.size(), stdout);
      std::fputc('\n', stdout);
      ++listed;
    }
    progress.Update(listed);
    return absl::OkStatus();
  });
  progress.Clear();
  if (!status.ok() && !(status.code() == absl::StatusCode::kCancelled && listed == limit)) {
    return c.Fail(status);
  }
  return kExitOk;
}

int Count(Context& c) {
  absl::StatusOr<std::string> rule = AdHocRule(c, 0);
  if (!rule.ok()) return RuleError(c, rule.status());
  v1::CountRequest request;
  request.set_rule(*rule);
  absl::StatusOr<v1::CountResponse> response = c.cluster().Count(request);
  if (!response.ok()) return c.Fail(response.status());
  if (c.json()) {
    PrintJson(*response);
  } else {
    std::printf("%s of %s profiles match (%s)\n", FormatCount(response->matched()).c_str(),
                FormatCount(response->total()).c_str(),
                FormatPercent(response->matched(), response->total()).c_str());
  }
  return kExitOk;
}

int Funnel(Context& c) {
  v1::FunnelRequest request;
  for (const std::string& step : c.positional()) request.add_steps(step);
  if (std::optional<std::string> within = c.args().Get("within")) {
    absl::StatusOr<int64_t> ms = ParseDurationMs(*within);
    if (!ms.ok()) return c.Usage(absl::StrCat("--within: ", ms.status().message()));
    request.set_within_ms(*ms);
  }
  absl::StatusOr<v1::FunnelResponse> response = c.cluster().Funnel(request);
  if (!response.ok()) return c.Fail(response.status());
  if (c.json()) {
    PrintJson(*response);
    return kExitOk;
  }
  Table table({"STEP", "EVENT", "PROFILES", "OF ALL", "OF PREVIOUS"}, {0, 2, 3, 4});
  for (int k = 0; k < response->counts_size(); ++k) {
    table.Add({absl::StrCat(k + 1), request.steps(k), FormatCount(response->counts(k)),
               FormatPercent(response->counts(k), response->total()),
               k == 0 ? "" : FormatPercent(response->counts(k), response->counts(k - 1))});
  }
  table.Print();
  std::printf("%s profiles in all%s\n", FormatCount(response->total()).c_str(),
              request.within_ms() > 0
                  ? absl::StrCat(", each sequence within ", c.args().GetOr("within", "")).c_str()
                  : "");
  return kExitOk;
}

int Explain(Context& c) {
  v1::ExplainRequest request;
  request.set_key(c.positional()[0]);
  const std::optional<std::string> segment = c.args().Get("segment");
  if (segment.has_value()) {
    if (c.args().Has("rule") || c.args().Has("file")) {
      return c.Usage("give --segment or a rule (--rule, --file), not both");
    }
    request.set_segment(*segment);
  } else {
    absl::StatusOr<std::string> rule = AdHocRule(c, std::nullopt);
    if (!rule.ok()) {
      return RuleError(
          c, absl::Status(rule.status().code(),
                          absl::StrCat(rule.status().message(),
                                       ": use --segment ID, --rule RULE or --file FILE")));
    }
    request.set_rule(*rule);
  }
  absl::StatusOr<v1::ExplainResponse> response = c.cluster().Explain(request);
  if (!response.ok()) return c.Fail(response.status());
  if (c.json()) {
    PrintJson(*response);
    return kExitOk;
  }
  if (segment.has_value()) {
    std::printf("%s %s a member of %s\n", request.key().c_str(),
                response->matched() ? "is" : "is not", segment->c_str());
  } else {
    std::printf("the rule is %s for %s\n", response->matched() ? "true" : "false",
                request.key().c_str());
  }
  for (const v1::ExplainTerm& term : response->terms()) {
    std::printf("%s%s  =>  %s\n", std::string(2 * (term.depth() + 1), ' ').c_str(),
                term.text().c_str(), term.value().c_str());
  }
  return kExitOk;
}

const FlagSpec kRuleFlag = {"rule", "RULE", "the rule to evaluate"};
const FlagSpec kFileFlag = {"file", "FILE", "read the rule from FILE (- for stdin)"};

}  // namespace

std::vector<Command> QueryCommands() {
  return {
      {{"profile", "get"},
       "KEY",
       "show a profile: its shard, segments, attributes and events",
       "Asks the shard the ring maps KEY to. NOT_FOUND (exit 1) if it has no such profile.\n"
       "--json prints the Profile message.\n",
       {},
       1,
       1,
       true,
       ProfileGet},
      {{"members"},
       "SEGMENT",
       "list the members of a segment, one key per line",
       "Keys come shard after shard, unsorted.\n",
       {{"limit", "N", "stop after N keys"}},
       1,
       1,
       true,
       Members},
      {{"count"},
       "[RULE]",
       "count the profiles an ad-hoc rule matches across the cluster",
       "The rule is not stored. It is the argument RULE, --rule or the contents of --file.\n\n"
       "  segctl count 'did(purchase within 30d) and country = \"DK\"'\n",
       {kRuleFlag, kFileFlag},
       0,
       1,
       true,
       Count},
      {{"funnel"},
       "STEP...",
       "count the profiles that did each prefix of a sequence of events",
       "Each STEP is `type [where predicate]`; step k counts the profiles whose history holds\n"
       "steps 1..k in order (SPEC §5, Query.Funnel), summed over the shards.\n\n"
       "  segctl funnel page_view add_to_cart purchase --within 7d\n",
       {{"within", "DURATION", "each sequence within this window (e.g. 7d); default: none"}},
       1,
       Command::kAnyNumber,
       true,
       Funnel},
      {{"explain"},
       "KEY",
       "show how a segment's rule (or an ad-hoc rule) evaluates for one profile",
       "Prints whether it matches, then each term of the rule with its value, indented by\n"
       "depth.\n\n"
       "  segctl explain u42 --segment vip\n"
       "  segctl explain u42 --rule 'ltv > 500'\n",
       {{"segment", "ID", "the segment whose rule to explain"}, kRuleFlag, kFileFlag},
       1,
       1,
       true,
       Explain},
  };
}

}  // namespace segd::segctl
