#include "client/segctl/cli.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/segctl/args.h"
#include "client/segctl/command.h"

namespace segd::segctl {
namespace {

constexpr char kDefaultServer[] = "127.0.0.1:7070";

constexpr char kExitCodes[] =
    "exit codes:\n"
    "  0  success\n"
    "  1  the operation failed: a server refused it (the server's message is printed, e.g.\n"
    "     INVALID_ARGUMENT: ... 1:7: expected ')'), or some input was rejected or malformed\n"
    "  2  usage error: unknown command or flag, missing or bad argument\n"
    "  3  a shard could not be reached (UNAVAILABLE or DEADLINE_EXCEEDED)\n";

std::vector<Command> AllCommands() {
  std::vector<Command> all;
  for (auto table : {SegmentCommands, QueryCommands, ChangeCommands, DataCommands, RecoverCommands,
                     AdminCommands, DemoCommands}) {
    std::vector<Command> part = table();
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

std::string FlagColumn(const FlagSpec& flag) {
  return flag.value.empty() ? absl::StrCat("--", flag.name)
                            : absl::StrCat("--", flag.name, " ", flag.value);
}

void PrintFlags(std::FILE* out, const char* title, const std::vector<FlagSpec>& flags) {
  if (flags.empty()) return;
  size_t width = 0;
  for (const FlagSpec& f : flags) width = std::max(width, FlagColumn(f).size());
  std::fprintf(out, "\n%s:\n", title);
  for (const FlagSpec& f : flags) {
    std::fprintf(out, "  %-*s  %s\n", static_cast<int>(width), FlagColumn(f).c_str(),
                 f.help.c_str());
  }
}

std::string Synopsis(const Command& c) {
  std::string s = absl::StrCat("segctl ", c.Name());
  if (!c.flags.empty()) absl::StrAppend(&s, " [flags]");
  if (!c.synopsis.empty()) absl::StrAppend(&s, " ", c.synopsis);
  return s;
}

void PrintCommandHelp(std::FILE* out, const Command& c) {
  std::fprintf(out, "usage: %s\n\n%s\n", Synopsis(c).c_str(), c.summary.c_str());
  if (!c.details.empty()) std::fprintf(out, "\n%s", c.details.c_str());
  if (!c.details.empty() && c.details.back() != '\n') std::fputc('\n', out);
  PrintFlags(out, "flags", c.flags);
  PrintFlags(out, "global flags", GlobalFlags());
}

void PrintHelp(std::FILE* out, const std::vector<Command>& commands, const std::string& group) {
  if (group.empty()) {
    std::fprintf(out,
                 "segctl: the command-line client of a segd cluster\n\n"
                 "usage: segctl [--servers HOST:PORT,...] COMMAND [flags] [args]\n\n"
                 "commands:\n");
  } else {
    std::fprintf(out, "usage: segctl %s COMMAND [flags] [args]\n\ncommands:\n", group.c_str());
  }
  size_t width = 0;
  for (const Command& c : commands) {
    if (group.empty() || c.path[0] == group) {
      width = std::max(width, c.Name().size() + 1 + c.synopsis.size());
    }
  }
  for (const Command& c : commands) {
    if (!group.empty() && c.path[0] != group) continue;
    const std::string left = absl::StrCat(c.Name(), " ", c.synopsis);
    std::fprintf(out, "  %-*s  %s\n", static_cast<int>(width), left.c_str(), c.summary.c_str());
  }
  PrintFlags(out, "global flags", GlobalFlags());
  std::fprintf(out,
               "\nenvironment:\n  SEGD_SERVERS  the default for --servers\n\n%s\n"
               "'segctl COMMAND --help' explains one command.\n",
               kExitCodes);
}

bool IsGroup(const std::vector<Command>& commands, const std::string& word) {
  return std::any_of(commands.begin(), commands.end(),
                     [&](const Command& c) { return c.path.size() > 1 && c.path[0] == word; });
}

const Command* Find(const std::vector<Command>& commands, const std::vector<std::string>& words) {
  for (const Command& c : commands) {
    if (c.path == words) return &c;
  }
  return nullptr;
}

// Whether `arg` is a global flag that takes its value as the next argument.
bool TakesNextArgument(const std::string& arg) {
  if (!absl::StartsWith(arg, "--") || absl::StrContains(arg, '=')) return false;
  const std::string name = CanonicalFlagName(arg.substr(2));
  for (const FlagSpec& f : GlobalFlags()) {
    if (f.name == name) return !f.value.empty();
  }
  return false;
}

std::vector<std::string> Servers(const Args& args) {
  std::string list;
  if (std::optional<std::string> flag = args.Get("servers")) {
    list = *flag;
  } else if (const char* env = std::getenv("SEGD_SERVERS"); env != nullptr && *env != '\0') {
    list = env;
  } else {
    list = kDefaultServer;
  }
  std::vector<std::string> servers;
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (!part.empty()) servers.emplace_back(part);
  }
  return servers;
}

}  // namespace

int RunCli(int argc, char** argv) {
  const std::vector<Command> commands = AllCommands();
  std::vector<std::string> tokens(argv + 1, argv + argc);

  // The command's words are the first (at most two) arguments that are not flags,
  // skipping the values of global flags given as separate arguments.
  std::vector<size_t> word_positions;
  for (size_t i = 0; i < tokens.size() && word_positions.size() < 2; ++i) {
    if (tokens[i] == "--") break;
    if (absl::StartsWith(tokens[i], "-")) {
      if (TakesNextArgument(tokens[i])) ++i;
      continue;
    }
    word_positions.push_back(i);
  }
  std::vector<std::string> words;
  for (size_t p : word_positions) words.push_back(tokens[p]);
  const bool asked_help = std::any_of(tokens.begin(), tokens.end(), [](const std::string& t) {
    return t == "--help" || t == "-h";
  });

  if (words.empty()) {
    PrintHelp(asked_help ? stdout : stderr, commands, "");
    return asked_help ? kExitOk : kExitUsage;
  }
  if (words[0] == "help") {
    std::vector<std::string> topic;
    for (size_t i = word_positions[0] + 1; i < tokens.size(); ++i) {
      if (!absl::StartsWith(tokens[i], "-")) topic.push_back(tokens[i]);
    }
    if (topic.empty()) {
      PrintHelp(stdout, commands, "");
      return kExitOk;
    }
    if (const Command* c = Find(commands, topic)) {
      PrintCommandHelp(stdout, *c);
      return kExitOk;
    }
    if (topic.size() == 1 && IsGroup(commands, topic[0])) {
      PrintHelp(stdout, commands, topic[0]);
      return kExitOk;
    }
    std::fprintf(stderr, "segctl: no command \"%s\" (see 'segctl help')\n",
                 absl::StrJoin(topic, " ").c_str());
    return kExitUsage;
  }

  const Command* command = Find(commands, words);
  size_t used_words = words.size();
  if (command == nullptr) {
    command = Find(commands, {words[0]});
    used_words = 1;
  }
  if (command == nullptr) {
    if (IsGroup(commands, words[0])) {
      if (words.size() > 1) {
        std::fprintf(stderr, "segctl: no command \"%s %s\"\n\n", words[0].c_str(),
                     words[1].c_str());
      }
      PrintHelp(asked_help && words.size() == 1 ? stdout : stderr, commands, words[0]);
      return asked_help && words.size() == 1 ? kExitOk : kExitUsage;
    }
    std::fprintf(stderr, "segctl: no command \"%s\" (see 'segctl help')\n", words[0].c_str());
    return kExitUsage;
  }
  for (size_t k = used_words; k-- > 0;) {
    tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(word_positions[k]));
  }

  std::vector<FlagSpec> specs = command->flags;
  specs.insert(specs.end(), GlobalFlags().begin(), GlobalFlags().end());
  absl::StatusOr<Args> args = Args::Parse(tokens, specs);
  if (!args.ok()) {
    std::fprintf(stderr, "segctl %s: %s\n(see 'segctl %s --help')\n", command->Name().c_str(),
                 std::string(args.status().message()).c_str(), command->Name().c_str());
    return kExitUsage;
  }
  if (args->Has("help")) {
    PrintCommandHelp(stdout, *command);
    return kExitOk;
  }
  Context context(*command, *args, Servers(*args));
  const size_t given = args->positional().size();
  if (given < command->min_args || given > command->max_args) {
    return context.Usage(given < command->min_args
                             ? absl::StrCat("missing arguments: usage: ", Synopsis(*command))
                             : absl::StrCat("unexpected argument \"",
                                            args->positional()[command->max_args],
                                            "\": usage: ", Synopsis(*command)));
  }
  if (command->uses_cluster && context.servers().empty()) {
    return context.Usage("--servers: no server given");
  }
  if (absl::Status init = context.Init(); !init.ok()) {
    return context.Usage(std::string(init.message()));
  }
  return command->run(context);
}

}  // namespace segd::segctl
