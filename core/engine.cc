#include "core/engine.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace segd {
namespace {

uint64_t NewIncarnation() {
  std::random_device rd;
  const uint64_t r = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return r == 0 ? 1 : r;
}

// Runs an asynchronous operation and waits for its result.
template <typename T, typename Start>
T Wait(Start start) {
  std::optional<T> result;
  absl::Notification finished;
  start([&](T r) {
    result.emplace(std::move(r));
    finished.Notify();
  });
  finished.WaitForNotification();
  return std::move(*result);
}

absl::Status NotFound(std::string_view what, std::string_view name) {
  return absl::NotFoundError(absl::StrCat(AsAbsl(what), " '", AsAbsl(name), "' not found"));
}

void SortByIndex(std::vector<UpdateError>* errors) {
  std::sort(errors->begin(), errors->end(),
            [](const UpdateError& a, const UpdateError& b) { return a.index < b.index; });
}

// The updates (or profiles) of one batch that one shard owns, by index in the batch.
std::vector<std::vector<uint32_t>> Partition(const Engine& engine, size_t n,
                                             const std::function<std::string_view(size_t)>& key) {
  std::vector<std::vector<uint32_t>> by_shard(engine.num_shards());
  for (size_t i = 0; i < n; ++i)
    by_shard[engine.ShardOf(key(i))].push_back(static_cast<uint32_t>(i));
  return by_shard;
}

// Calls f(i, inputs[i]) for each i of `mine` (one shard's share of a batch of updates or
// profiles), in order. Profiles are scattered over memory: each input goes through the
// prefetch pipeline a few inputs ahead, so its cache misses overlap with the work on the
// inputs before it.
template <typename Input, typename F>
void ForEachPrefetched(const Shard& s, std::span<const Input> inputs,
                       const std::vector<uint32_t>& mine, const F& f) {
  using Stage = ProfileStore::PrefetchStage;
  constexpr size_t kIndexAhead = 12, kRecordAhead = 6, kBlobAhead = 2;
  auto input = [&](size_t k) -> const Input& { return inputs[mine[k]]; };
  for (size_t k = 0; k < std::min(kIndexAhead, mine.size()); ++k) {
    s.Prefetch(input(k), Stage::kIndex);
  }
  for (size_t k = 0; k < mine.size(); ++k) {
    if (k + kIndexAhead < mine.size()) s.Prefetch(input(k + kIndexAhead), Stage::kIndex);
    if (k + kRecordAhead < mine.size()) s.Prefetch(input(k + kRecordAhead), Stage::kRecord);
    if (k + kBlobAhead < mine.size()) s.Prefetch(input(k + kBlobAhead), Stage::kBlob);
    f(mine[k], input(k));
  }
}

}  // namespace

Engine::Engine(const EngineOptions& options, int num_shards, Clock& clock, ShardExecutor* executor)
    : options_(options),
      clock_(clock),
      executor_(executor != nullptr ? executor : &inline_executor_),
      incarnation_(NewIncarnation()),
      now_(std::numeric_limits<int64_t>::min()),
      catalog_(options.max_segments) {
  const int n = std::max(1, num_shards);
  shards_.reserve(n);
  for (int i = 0; i < n; ++i) shards_.push_back(std::make_unique<Shard>(i, options_));
  Tick();
}

Engine::~Engine() = default;

int Engine::ShardOf(std::string_view key) const {
  if (shards_.size() == 1) return 0;
  return static_cast<int>(std::hash<std::string_view>{}(key) % shards_.size());
}

std::shared_ptr<const SegmentCatalog> Engine::catalog() const {
  absl::MutexLock lock(&catalog_mu_);
  return catalog_.Snapshot();
}

Shard& Engine::Current(Shard& shard) const {
  shard.AdvanceTo(clock_.NowMs());
  return shard;
}

void Engine::ForAllShards(std::function<void(Shard&)> work, absl::AnyInvocable<void() &&> done) {
  struct Fan {
    std::function<void(Shard&)> work;
    absl::AnyInvocable<void() &&> done;
    std::atomic<size_t> left;
  };
  auto fan = std::make_shared<Fan>();
  fan->work = std::move(work);
  fan->done = std::move(done);
  fan->left.store(shards_.size());
  for (auto& s : shards_) {
    Shard* shard = s.get();
    executor_->Post(shard->index(), [fan, shard]() {
      fan->work(*shard);
      if (fan->left.fetch_sub(1, std::memory_order_acq_rel) == 1) std::move(fan->done)();
    });
  }
}

// ---- Ingest ----

template <typename Update>
void Engine::ApplySpan(std::span<const Update> updates, Done<BatchResult> done) {
  struct Job {
    std::span<const Update> updates;
    std::vector<std::vector<uint32_t>> by_shard;
    std::vector<BatchResult> parts;
    Done<BatchResult> done;
  };
  auto job = std::make_shared<Job>();
  job->updates = updates;
  job->by_shard = Partition(*this, updates.size(),
                            [&](size_t i) -> std::string_view { return updates[i].key; });
  job->parts.resize(shards_.size());
  job->done = std::move(done);
  ForAllShards(
      [this, job](Shard& s) {
        const std::vector<uint32_t>& mine = job->by_shard[s.index()];
        if (mine.empty()) return;
        Current(s);
        BatchResult& part = job->parts[s.index()];
        ForEachPrefetched(s, job->updates, mine, [&](uint32_t i, const Update& u) {
          absl::Status status = s.Apply(u);
          if (status.ok()) {
            ++part.applied;
          } else {
            part.errors.push_back(
                UpdateError{i, std::string(u.key), std::string(status.message())});
          }
        });
        s.Flush();
      },
      [job]() {
        BatchResult result;
        for (BatchResult& part : job->parts) {
          result.applied += part.applied;
          for (UpdateError& e : part.errors) result.errors.push_back(std::move(e));
        }
        SortByIndex(&result.errors);
        std::move(job->done)(std::move(result));
      });
}

void Engine::ApplyAsync(std::vector<ProfileUpdate> updates, Done<BatchResult> done) {
  auto owned = std::make_shared<std::vector<ProfileUpdate>>(std::move(updates));
  ApplySpan<ProfileUpdate>(*owned, [owned, done = std::move(done)](BatchResult r) mutable {
    std::move(done)(std::move(r));
  });
}

void Engine::ApplyAsync(std::span<const UpdateRef> updates, Done<BatchResult> done) {
  ApplySpan(updates, std::move(done));
}

BatchResult Engine::Apply(std::span<const ProfileUpdate> updates) {
  return Wait<BatchResult>(
      [&](Done<BatchResult> done) { ApplySpan<ProfileUpdate>(updates, std::move(done)); });
}

template <typename Profile>
void Engine::ReplaySpan(std::span<const Profile> profiles, bool quiet, Done<ReplayResult> done) {
  struct Job {
    std::span<const Profile> profiles;
    std::vector<std::vector<uint32_t>> by_shard;
    std::vector<ReplayResult> parts;
    Done<ReplayResult> done;
  };
  auto job = std::make_shared<Job>();
  job->profiles = profiles;
  job->by_shard = Partition(*this, profiles.size(),
                            [&](size_t i) -> std::string_view { return profiles[i].key; });
  job->parts.resize(shards_.size());
  job->done = std::move(done);
  ForAllShards(
      [this, job, quiet](Shard& s) {
        const std::vector<uint32_t>& mine = job->by_shard[s.index()];
        if (mine.empty()) return;
        Current(s);
        ReplayResult& part = job->parts[s.index()];
        ForEachPrefetched(s, job->profiles, mine, [&](uint32_t i, const Profile& p) {
          absl::StatusOr<uint64_t> events = s.Replay(p, quiet);
          if (events.ok()) {
            ++part.profiles;
            part.events += *events;
          } else {
            part.errors.push_back(
                UpdateError{i, std::string(p.key), std::string(events.status().message())});
          }
        });
        s.Flush();
      },
      [job]() {
        ReplayResult result;
        for (ReplayResult& part : job->parts) {
          result.profiles += part.profiles;
          result.events += part.events;
          for (UpdateError& e : part.errors) result.errors.push_back(std::move(e));
        }
        SortByIndex(&result.errors);
        std::move(job->done)(std::move(result));
      });
}

void Engine::ReplayAsync(std::span<const ProfileRef> profiles, bool quiet,
                         Done<ReplayResult> done) {
  ReplaySpan(profiles, quiet, std::move(done));
}

ReplayResult Engine::Replay(std::span<const ProfileData> profiles, bool quiet) {
  return Wait<ReplayResult>(
      [&](Done<ReplayResult> done) { ReplaySpan(profiles, quiet, std::move(done)); });
}

// ---- Segments ----

void Engine::PutSegmentAsync(SegmentSpec spec, bool dry_run,
                             Done<absl::StatusOr<PutSegmentResult>> done) {
  absl::MutexLock lock(&catalog_mu_);
  absl::StatusOr<std::shared_ptr<const SegmentDef>> prepared =
      catalog_.Prepare(spec, clock_.NowMs());
  if (!prepared.ok()) return std::move(done)(prepared.status());
  std::shared_ptr<const SegmentDef> def = *prepared;
  if (!dry_run) catalog_.Commit(def);
  std::shared_ptr<const SegmentCatalog> snapshot = catalog_.Snapshot();
  auto diffs = std::make_shared<std::vector<SegmentDiff>>(shards_.size());
  ForAllShards(
      [this, def, snapshot, diffs, dry_run](Shard& s) {
        Current(s);
        (*diffs)[s.index()] =
            dry_run ? s.DryRunSegment(*def, *snapshot) : s.PutSegment(def, *snapshot);
        s.Flush();
      },
      [def, diffs, done = std::move(done)]() mutable {
        PutSegmentResult result;
        result.segment = SegmentInfo{def->id, def->rule_text, def->description, 0, def->updated_at};
        for (const SegmentDiff& d : *diffs) {
          result.entered += d.entered;
          result.exited += d.exited;
          result.segment.member_count += d.members;
        }
        std::move(done)(std::move(result));
      });
}

void Engine::DeleteSegmentAsync(std::string id, Done<absl::StatusOr<uint64_t>> done) {
  absl::MutexLock lock(&catalog_mu_);
  if (absl::Status s = catalog_.CheckDelete(id); !s.ok()) return std::move(done)(s);
  std::shared_ptr<const SegmentDef> def = catalog_.Find(id);
  catalog_.Erase(id);
  std::shared_ptr<const SegmentCatalog> snapshot = catalog_.Snapshot();
  auto exited = std::make_shared<std::vector<uint64_t>>(shards_.size());
  ForAllShards(
      [this, def, snapshot, exited](Shard& s) {
        Current(s);
        (*exited)[s.index()] = s.DeleteSegment(*def, *snapshot);
        s.Flush();
      },
      [exited, done = std::move(done)]() mutable {
        uint64_t total = 0;
        for (uint64_t e : *exited) total += e;
        std::move(done)(total);
      });
}

void Engine::GetSegmentAsync(std::string id, Done<absl::StatusOr<SegmentInfo>> done) {
  absl::MutexLock lock(&catalog_mu_);
  std::shared_ptr<const SegmentDef> def = catalog_.Find(id);
  if (def == nullptr) return std::move(done)(NotFound("segment", id));
  auto counts = std::make_shared<std::vector<uint64_t>>(shards_.size());
  ForAllShards([def, counts](Shard& s) { (*counts)[s.index()] = s.MemberCount(def->slot); },
               [def, counts, done = std::move(done)]() mutable {
                 SegmentInfo info{def->id, def->rule_text, def->description, 0, def->updated_at};
                 for (uint64_t c : *counts) info.member_count += c;
                 std::move(done)(std::move(info));
               });
}

void Engine::ListSegmentsAsync(Done<std::vector<SegmentInfo>> done) {
  absl::MutexLock lock(&catalog_mu_);
  auto defs = std::make_shared<std::vector<std::shared_ptr<const SegmentDef>>>(catalog_.order());
  std::sort(defs->begin(), defs->end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  auto counts = std::make_shared<std::vector<std::vector<uint64_t>>>(shards_.size());
  ForAllShards(
      [defs, counts](Shard& s) {
        for (const auto& def : *defs) (*counts)[s.index()].push_back(s.MemberCount(def->slot));
      },
      [defs, counts, done = std::move(done)]() mutable {
        std::vector<SegmentInfo> out;
        for (size_t k = 0; k < defs->size(); ++k) {
          const SegmentDef& def = *(*defs)[k];
          SegmentInfo info{def.id, def.rule_text, def.description, 0, def.updated_at};
          for (const auto& shard_counts : *counts) info.member_count += shard_counts[k];
          out.push_back(std::move(info));
        }
        std::move(done)(std::move(out));
      });
}

absl::StatusOr<PutSegmentResult> Engine::PutSegment(const SegmentSpec& spec, bool dry_run) {
  using R = absl::StatusOr<PutSegmentResult>;
  return Wait<R>([&](Done<R> done) { PutSegmentAsync(spec, dry_run, std::move(done)); });
}

absl::StatusOr<uint64_t> Engine::DeleteSegment(std::string_view id) {
  using R = absl::StatusOr<uint64_t>;
  return Wait<R>([&](Done<R> done) { DeleteSegmentAsync(std::string(id), std::move(done)); });
}

absl::StatusOr<SegmentInfo> Engine::GetSegment(std::string_view id) {
  using R = absl::StatusOr<SegmentInfo>;
  return Wait<R>([&](Done<R> done) { GetSegmentAsync(std::string(id), std::move(done)); });
}

std::vector<SegmentInfo> Engine::ListSegments() {
  using R = std::vector<SegmentInfo>;
  return Wait<R>([&](Done<R> done) { ListSegmentsAsync(std::move(done)); });
}

// ---- Queries ----

absl::StatusOr<std::unique_ptr<Expr>> Engine::ParseQueryRule(std::string_view text) {
  absl::StatusOr<std::unique_ptr<Expr>> rule = ParseRule(text);
  if (!rule.ok()) return rule.status();
  absl::Status error;
  VisitExprs(**rule, [&](Expr& e) {
    if (error.ok() && e.kind == ExprKind::kInSegment && catalog_.Find(e.segment) == nullptr) {
      error = absl::InvalidArgumentError(
          absl::StrCat(e.pos.line, ":", e.pos.column, ": unknown segment '", e.segment, "'"));
    }
  });
  if (!error.ok()) return error;
  return rule;
}

std::vector<Diagnostic> Engine::ValidateRule(std::string_view text) const {
  std::vector<Diagnostic> diagnostics = segd::ValidateRule(text);
  if (!diagnostics.empty()) return diagnostics;
  // A rule that parses may still name segments that do not exist, as PutSegment and
  // Count would say.
  absl::StatusOr<std::unique_ptr<Expr>> rule = ParseRule(text);
  absl::MutexLock lock(&catalog_mu_);
  VisitExprs(**rule, [&](Expr& e) {
    if (e.kind == ExprKind::kInSegment && catalog_.Find(e.segment) == nullptr) {
      diagnostics.push_back(Diagnostic{e.pos, absl::StrCat("unknown segment '", e.segment, "'")});
    }
  });
  return diagnostics;
}

void Engine::GetProfileAsync(std::string key, Done<absl::StatusOr<ProfileData>> done) {
  if (absl::Status s = ValidateProfileKey(key); !s.ok()) return std::move(done)(s);
  Shard* shard = shards_[ShardOf(key)].get();
  executor_->Post(shard->index(),
                  [this, shard, key = std::move(key), done = std::move(done)]() mutable {
                    std::optional<ProfileData> p = Current(*shard).GetProfile(key);
                    if (!p) return std::move(done)(NotFound("profile", key));
                    std::move(done)(std::move(*p));
                  });
}

void Engine::MembersChunkAsync(std::string segment, int shard_index, uint32_t from, size_t max,
                               Done<absl::StatusOr<ShardChunk<std::string>>> done) {
  absl::MutexLock lock(&catalog_mu_);
  std::shared_ptr<const SegmentDef> def = catalog_.Find(segment);
  if (def == nullptr) return std::move(done)(NotFound("segment", segment));
  Shard* shard = shards_[shard_index].get();
  // Posted under catalog_mu_, so the shard sees the segment before any later delete.
  executor_->Post(shard_index,
                  [this, shard, slot = def->slot, from, max, done = std::move(done)]() mutable {
                    ShardChunk<std::string> chunk;
                    chunk.next = Current(*shard).ReadMembers(slot, from, max, &chunk.items);
                    std::move(done)(std::move(chunk));
                  });
}

void Engine::CountAsync(std::string rule_text, Done<absl::StatusOr<CountResult>> done) {
  absl::MutexLock lock(&catalog_mu_);
  absl::StatusOr<std::unique_ptr<Expr>> parsed = ParseQueryRule(rule_text);
  if (!parsed.ok()) return std::move(done)(parsed.status());
  std::shared_ptr<const Expr> rule = std::move(*parsed);
  std::shared_ptr<const SegmentCatalog> snapshot = catalog_.Snapshot();
  auto parts = std::make_shared<std::vector<CountResult>>(shards_.size());
  ForAllShards(
      [this, rule, snapshot, parts](Shard& s) {
        CountResult& part = (*parts)[s.index()];
        Current(s).Count(*rule, *snapshot, &part.matched, &part.total);
      },
      [parts, done = std::move(done)]() mutable {
        CountResult result;
        for (const CountResult& p : *parts) {
          result.matched += p.matched;
          result.total += p.total;
        }
        std::move(done)(result);
      });
}

void Engine::FunnelAsync(std::vector<std::string> steps, int64_t within_ms,
                         Done<absl::StatusOr<FunnelResult>> done) {
  if (within_ms < 0) {
    return std::move(done)(
        absl::InvalidArgumentError(absl::StrCat("within_ms: must be >= 0, got ", within_ms)));
  }
  if (steps.empty()) {
    return std::move(done)(absl::InvalidArgumentError("steps: a funnel needs at least one step"));
  }
  auto selectors = std::make_shared<std::vector<Selector>>();
  for (size_t i = 0; i < steps.size(); ++i) {
    absl::StatusOr<Selector> s = ParseFunnelStep(steps[i]);
    if (!s.ok()) {
      return std::move(done)(
          absl::InvalidArgumentError(absl::StrCat("steps[", i, "]: ", s.status().message())));
    }
    selectors->push_back(std::move(*s));
  }
  const int64_t window = within_ms == 0 ? -1 : within_ms;
  auto parts = std::make_shared<std::vector<FunnelResult>>(shards_.size());
  ForAllShards(
      [this, selectors, window, parts](Shard& s) {
        FunnelResult& part = (*parts)[s.index()];
        Current(s).Funnel(*selectors, window, &part.counts, &part.total, &part.events_scanned);
      },
      [n = steps.size(), parts, done = std::move(done)]() mutable {
        FunnelResult result;
        result.counts.assign(n, 0);
        for (const FunnelResult& p : *parts) {
          for (size_t k = 0; k < p.counts.size(); ++k) result.counts[k] += p.counts[k];
          result.total += p.total;
          result.events_scanned += p.events_scanned;
        }
        std::move(done)(std::move(result));
      });
}

void Engine::ExplainAsync(std::string key, std::string segment, std::string rule_text,
                          Done<absl::StatusOr<ExplainResult>> done) {
  if (segment.empty() == rule_text.empty()) {
    return std::move(done)(
        absl::InvalidArgumentError("explain: give exactly one of segment and rule"));
  }
  if (absl::Status s = ValidateProfileKey(key); !s.ok()) return std::move(done)(s);
  absl::MutexLock lock(&catalog_mu_);
  if (!segment.empty()) {
    std::shared_ptr<const SegmentDef> def = catalog_.Find(segment);
    if (def == nullptr) return std::move(done)(NotFound("segment", segment));
    rule_text = def->rule_text;
  }
  absl::StatusOr<std::unique_ptr<Expr>> parsed = ParseQueryRule(rule_text);
  if (!parsed.ok()) return std::move(done)(parsed.status());
  std::shared_ptr<const Expr> rule = std::move(*parsed);
  std::shared_ptr<const SegmentCatalog> snapshot = catalog_.Snapshot();
  Shard* shard = shards_[ShardOf(key)].get();
  executor_->Post(shard->index(), [this, shard, key = std::move(key), rule, snapshot,
                                   done = std::move(done)]() mutable {
    std::optional<ExplainResult> r = Current(*shard).Explain(key, *rule, *snapshot);
    if (!r) return std::move(done)(NotFound("profile", key));
    std::move(done)(std::move(*r));
  });
}

void Engine::ExportChunkAsync(int shard_index, uint32_t from, size_t max,
                              Done<ShardChunk<ProfileData>> done) {
  Shard* shard = shards_[shard_index].get();
  executor_->Post(shard_index, [this, shard, from, max, done = std::move(done)]() mutable {
    ShardChunk<ProfileData> chunk;
    chunk.next = Current(*shard).ReadProfiles(from, max, &chunk.items);
    std::move(done)(std::move(chunk));
  });
}

absl::StatusOr<ProfileData> Engine::GetProfile(std::string_view key) {
  using R = absl::StatusOr<ProfileData>;
  return Wait<R>([&](Done<R> done) { GetProfileAsync(std::string(key), std::move(done)); });
}

absl::StatusOr<std::vector<std::string>> Engine::Members(std::string_view segment) {
  using R = absl::StatusOr<ShardChunk<std::string>>;
  std::vector<std::string> keys;
  for (int i = 0; i < num_shards(); ++i) {
    R chunk = Wait<R>([&](Done<R> done) {
      MembersChunkAsync(std::string(segment), i, 0, std::numeric_limits<size_t>::max(),
                        std::move(done));
    });
    if (!chunk.ok()) return chunk.status();
    for (std::string& k : chunk->items) keys.push_back(std::move(k));
  }
  return keys;
}

absl::StatusOr<CountResult> Engine::Count(std::string_view rule) {
  using R = absl::StatusOr<CountResult>;
  return Wait<R>([&](Done<R> done) { CountAsync(std::string(rule), std::move(done)); });
}

absl::StatusOr<FunnelResult> Engine::Funnel(std::span<const std::string> steps, int64_t within_ms) {
  using R = absl::StatusOr<FunnelResult>;
  return Wait<R>([&](Done<R> done) {
    FunnelAsync(std::vector<std::string>(steps.begin(), steps.end()), within_ms, std::move(done));
  });
}

absl::StatusOr<ExplainResult> Engine::Explain(std::string_view key, std::string_view segment,
                                              std::string_view rule) {
  using R = absl::StatusOr<ExplainResult>;
  return Wait<R>([&](Done<R> done) {
    ExplainAsync(std::string(key), std::string(segment), std::string(rule), std::move(done));
  });
}

void Engine::ForEachProfile(const std::function<void(ProfileData&&)>& f) {
  constexpr size_t kChunk = 1024;
  for (int i = 0; i < num_shards(); ++i) {
    for (uint32_t from = 0; from != kExportDone;) {
      using Chunk = ShardChunk<ProfileData>;
      Chunk chunk = Wait<Chunk>(
          [&](Done<Chunk> done) { ExportChunkAsync(i, from, kChunk, std::move(done)); });
      for (ProfileData& p : chunk.items) f(std::move(p));
      from = chunk.next;
    }
  }
}

// ---- Time ----

void Engine::AdvanceTime(int64_t t, Done<absl::Status> done) {
  ForAllShards(
      [t](Shard& s) {
        s.AdvanceTo(t);
        s.Flush();
      },
      [this, t, done = std::move(done)]() mutable {
        int64_t seen = now_.load(std::memory_order_relaxed);
        while (seen < t && !now_.compare_exchange_weak(seen, t, std::memory_order_acq_rel)) {
        }
        std::move(done)(absl::OkStatus());
      });
}

void Engine::TickAsync(Done<absl::Status> done) { AdvanceTime(clock_.NowMs(), std::move(done)); }

void Engine::SetTimeAsync(int64_t now_ms, Done<absl::Status> done) {
  auto* manual = dynamic_cast<ManualClock*>(&clock_);
  if (manual == nullptr) {
    return std::move(done)(
        absl::FailedPreconditionError("SetTime needs the manual clock (--clock=manual)"));
  }
  absl::MutexLock lock(&time_mu_);
  const int64_t current = manual->NowMs();
  if (now_ms < current) {
    return std::move(done)(absl::FailedPreconditionError(
        absl::StrCat("SetTime cannot move the clock back, from ", current, " to ", now_ms)));
  }
  manual->Set(now_ms);
  AdvanceTime(now_ms, std::move(done));
}

void Engine::Tick() {
  // Advancing to the clock's own now cannot fail.
  Wait<absl::Status>([&](Done<absl::Status> done) { TickAsync(std::move(done)); }).IgnoreError();
}

absl::Status Engine::SetTime(int64_t now_ms) {
  return Wait<absl::Status>(
      [&](Done<absl::Status> done) { SetTimeAsync(now_ms, std::move(done)); });
}

// ---- Changes ----

Cursor Engine::CurrentCursor() const {
  Cursor c;
  c.incarnation = incarnation_;
  for (const auto& shard : shards_) c.positions.push_back(shard->changes().end());
  return c;
}

void Engine::SnapshotAsync(std::shared_ptr<const StringSet> segments, Done<Snapshot> done) {
  // Under the catalog lock: the cut comes after every segment operation posted before.
  absl::MutexLock lock(&catalog_mu_);
  struct Part {
    std::vector<Snapshot::Group> groups;
    uint64_t position = 0;
  };
  auto parts = std::make_shared<std::vector<Part>>(shards_.size());
  ForAllShards(
      [this, segments, parts](Shard& s) {
        Current(s).Flush();
        Part& part = (*parts)[s.index()];
        s.SnapshotMembers(segments.get(), &part.groups);
        part.position = s.changes().end();
      },
      [this, parts, done = std::move(done)]() mutable {
        Snapshot snap;
        snap.cursor.incarnation = incarnation_;
        for (Part& part : *parts) {
          for (Snapshot::Group& g : part.groups) snap.groups.push_back(std::move(g));
          snap.cursor.positions.push_back(part.position);
        }
        std::move(done)(std::move(snap));
      });
}

Snapshot Engine::TakeSnapshot(const StringSet* segments) {
  auto filter = segments != nullptr ? std::make_shared<const StringSet>(*segments) : nullptr;
  return Wait<Snapshot>([&](Done<Snapshot> done) { SnapshotAsync(filter, std::move(done)); });
}

absl::Status Engine::ReadChanges(Cursor* cursor, size_t max, const StringSet* segments,
                                 std::vector<Change>* out) const {
  const size_t before = out->size();
  absl::Status s = ReadChanges(cursor, max, segments,
                               [out](const ChangeView& c) { out->push_back(c.ToChange()); });
  if (!s.ok()) out->resize(before);
  return s;
}

absl::Status Engine::ReadChanges(Cursor* cursor, size_t max, const StringSet* segments,
                                 absl::FunctionRef<void(const ChangeView&)> visit) const {
  if (cursor->incarnation != incarnation_) {
    return absl::OutOfRangeError(
        "cursor is from another server incarnation; re-subscribe with snapshot");
  }
  if (cursor->positions.size() != shards_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("cursor has ", cursor->positions.size(),
                                                   " shard positions, this server has ",
                                                   shards_.size()));
  }
  // On an error the cursor does not change.
  Cursor next = *cursor;
  for (size_t i = 0; i < shards_.size(); ++i) {
    absl::StatusOr<uint64_t> position =
        shards_[i]->changes().Read(next.positions[i], max, segments, visit);
    if (!position.ok()) return position.status();
    next.positions[i] = *position;
  }
  *cursor = std::move(next);
  return absl::OkStatus();
}

void Engine::SetChangeListener(const std::function<void(size_t queued)>& listener) {
  for (auto& shard : shards_) {
    shard->changes().SetListener(
        [this, index = shard->index(), listener] { listener(executor_->Queued(index)); });
  }
}

// ---- Stats ----

void Engine::StatsAsync(Done<EngineStats> done) {
  auto parts = std::make_shared<std::vector<ShardStats>>(shards_.size());
  ForAllShards([parts](Shard& s) { (*parts)[s.index()] = s.Stats(); },
               [this, parts, done = std::move(done)]() mutable {
                 EngineStats stats;
                 stats.incarnation = incarnation_;
                 stats.now = std::numeric_limits<int64_t>::min();
                 for (const ShardStats& st : *parts) {
                   stats.profiles += st.profiles;
                   stats.events += st.events;
                   stats.updates_applied += st.updates_applied;
                   stats.changes_emitted += st.changes_emitted;
                   stats.memory_bytes += st.memory_bytes;
                   stats.now = std::max(stats.now, st.now);
                 }
                 {
                   absl::MutexLock lock(&catalog_mu_);
                   stats.segments = static_cast<uint32_t>(catalog_.size());
                 }
                 std::move(done)(stats);
               });
}

EngineStats Engine::Stats() {
  return Wait<EngineStats>([&](Done<EngineStats> done) { StatsAsync(std::move(done)); });
}

}  // namespace segd
