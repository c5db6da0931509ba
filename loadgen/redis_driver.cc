#include "loadgen/redis_driver.h"

#include <charconv>
#include <deque>
#include <functional>
#include <memory>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "core/text.h"
#include "loadgen/resp.h"

namespace segd::load {
namespace {

constexpr uint32_t kUpdatePool = 1 << 16;
constexpr uint64_t kPreloadChunk = 256;  // profiles per pipelined chunk
constexpr int kPreloadInFlight = 2;      // chunks per connection
constexpr std::string_view kEventsSuffix = ":events";
constexpr std::string_view kHistoryCap = "1023";  // LTRIM 0 1023: segd's --max-events 1024
constexpr absl::Duration kConnectTimeout = absl::Seconds(5);

void AppendDouble(double v, std::string* out) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  out->append(buf, end);
}

// A value as Redis stores it: a string.
std::string RedisValue(const Value& v) {
  std::string out;
  switch (v.kind()) {
    case ValueKind::kString:
      return v.string_value();
    case ValueKind::kInt:
      return absl::StrCat(v.int_value());
    case ValueKind::kFloat:
      AppendDouble(v.float_value(), &out);
      return out;
    case ValueKind::kBool:
      return v.bool_value() ? "true" : "false";
    case ValueKind::kTime:
      return absl::StrCat(v.time_value());
    case ValueKind::kList:
      for (size_t i = 0; i < v.list_value().size(); ++i) {
        if (i > 0) out.push_back(',');
        out += v.list_value()[i];
      }
      return out;
  }
  return out;
}

// An event as one list element: type|time|name=value|...
std::string RedisEvent(const Event& e) {
  std::string out = absl::StrCat(e.type, "|", e.time);
  for (const auto& [name, value] : e.properties)
    absl::StrAppend(&out, "|", name, "=", RedisValue(value));
  return out;
}

// Several commands in flight, answered in order: the per-connection loop of both runs.
// Each unit (a chunk of profiles, a batch of updates) records its command count.
// The replies owed on one pipelined connection: units of commands sent together, whose
// replies are read back in order, with at most `depth` units outstanding.
class Pipeline {
 public:
  struct Unit {
    int64_t sent_ns;
    size_t replies;
    uint64_t items;
  };

  // `on_read` runs after each unit's replies were read. It is held by value: callers
  // pass a temporary lambda.
  Pipeline(resp::Connection& conn, size_t depth, std::function<void(const Unit&)> on_read)
      : conn_(conn), depth_(std::max<size_t>(1, depth)), on_read_(std::move(on_read)) {}

  // Sends `commands` as one unit, then reads replies while more than `depth` units
  // are outstanding.
  absl::Status Send(const std::string& commands, Unit unit) {
    if (absl::Status s = conn_.Send(commands); !s.ok()) return s;
    units_.push_back(unit);
    while (units_.size() >= depth_) {
      if (absl::Status s = ReadOldest(); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // Reads every reply still owed.
  absl::Status Flush() {
    while (!units_.empty()) {
      if (absl::Status s = ReadOldest(); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  uint64_t errors() const { return errors_; }
  const std::string& first_error() const { return first_error_; }

 private:
  absl::Status ReadOldest() {
    const Unit unit = units_.front();
    units_.pop_front();
    if (absl::Status s = conn_.ReadReplies(unit.replies, &errors_, &first_error_); !s.ok()) {
      return s;
    }
    on_read_(unit);
    return absl::OkStatus();
  }

  resp::Connection& conn_;
  const size_t depth_;
  const std::function<void(const Unit&)> on_read_;
  std::deque<Unit> units_;
  uint64_t errors_ = 0;
  std::string first_error_;
};

}  // namespace

RedisDriver::RedisDriver(const RedisOptions& options) : options_(options) {
  WorkloadOptions workload_options;
  workload_options.profiles = options.profiles;
  workload_options.seed = options.seed;
  Workload workload(workload_options);
  ProfileUpdate update;
  pool_.resize(kUpdatePool);
  for (UpdateTemplate& t : pool_) {
    workload.NextUpdate(options.now_ms, &update);
    if (!update.set.empty()) {
      t.attribute_head = "*4\r\n$4\r\nHSET\r\n";
      resp::AppendBulk(update.set[0].first, &t.attribute_tail);
      resp::AppendBulk(RedisValue(update.set[0].second), &t.attribute_tail);
    } else if (!update.increment.empty()) {
      t.attribute_head = "*4\r\n$12\r\nHINCRBYFLOAT\r\n";
      resp::AppendBulk(update.increment[0].first, &t.attribute_tail);
      resp::AppendBulk(RedisValue(update.increment[0].second), &t.attribute_tail);
    }
    resp::AppendBulk(RedisEvent(update.events[0]), &t.event_bulk);
  }
}

absl::StatusOr<RedisMemory> RedisDriver::Memory() const {
  absl::StatusOr<std::unique_ptr<resp::Connection>> c =
      resp::Connection::Connect(options_.address, kConnectTimeout);
  if (!c.ok()) return c.status();
  absl::StatusOr<resp::Reply> info = (*c)->Call({"INFO", "memory"});
  if (!info.ok()) return info.status();
  if (info->type != '$') {
    return absl::DataLossError(absl::StrCat(options_.address, ": INFO: ", info->text));
  }
  RedisMemory memory;
  for (absl::string_view line : absl::StrSplit(info->text, absl::ByAnyChar("\r\n"))) {
    const std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ':');
    if (kv.first == "used_memory") (void)absl::SimpleAtoi(kv.second, &memory.used_memory);
    if (kv.first == "used_memory_rss") (void)absl::SimpleAtoi(kv.second, &memory.used_memory_rss);
  }
  return memory;
}

absl::StatusOr<RedisPreloadResult> RedisDriver::Preload() {
  WorkloadOptions workload_options;
  workload_options.profiles = options_.profiles;
  workload_options.seed = options_.seed;
  const Workload workload(workload_options);
  std::atomic<uint64_t> next{0};
  absl::Mutex mu;
  absl::Status first_status;
  RedisPreloadResult result;
  preloaded_ = 0;

  const auto run = [&]() -> absl::Status {
    absl::StatusOr<std::unique_ptr<resp::Connection>> c =
        resp::Connection::Connect(options_.address, kConnectTimeout);
    if (!c.ok()) return c.status();
    resp::Connection& conn = **c;
    Pipeline pipeline(conn, kPreloadInFlight, [&](const Pipeline::Unit& unit) {
      preloaded_.fetch_add(unit.items, std::memory_order_relaxed);
    });
    std::string out, key, events_key;
    while (true) {
      const uint64_t begin = next.fetch_add(kPreloadChunk, std::memory_order_relaxed);
      if (begin >= options_.profiles) break;
      const uint64_t end = std::min(options_.profiles, begin + kPreloadChunk);
      out.clear();
      for (uint64_t n = begin; n < end; ++n) {
        const ProfileData profile = workload.MakeProfile(n, options_.now_ms);
        key = profile.key;
        events_key = absl::StrCat(key, AsAbsl(kEventsSuffix));
        // HSET key name value ...
        absl::StrAppend(&out, "*", 2 + 2 * profile.attributes.size(), "\r\n");
        resp::AppendBulk("HSET", &out);
        resp::AppendBulk(key, &out);
        for (const auto& [name, value] : profile.attributes) {
          resp::AppendBulk(name, &out);
          resp::AppendBulk(RedisValue(value), &out);
        }
        resp::AppendCommand({"DEL", events_key}, &out);
        // RPUSH key:events e1 ... (history order: the newest last)
        absl::StrAppend(&out, "*", 2 + profile.events.size(), "\r\n");
        resp::AppendBulk("RPUSH", &out);
        resp::AppendBulk(events_key, &out);
        for (const Event& e : profile.events) resp::AppendBulk(RedisEvent(e), &out);
      }
      if (absl::Status s = pipeline.Send(out, {0, 3 * (end - begin), end - begin}); !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = pipeline.Flush(); !s.ok()) return s;
    absl::MutexLock lock(&mu);
    result.errors += pipeline.errors();
    if (result.first_error.empty()) result.first_error = pipeline.first_error();
    return absl::OkStatus();
  };

  const int64_t start = MonoNs();
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, options_.connections); ++t) {
    threads.emplace_back([&] {
      absl::Status s = run();
      absl::MutexLock lock(&mu);
      if (first_status.ok()) first_status = std::move(s);
    });
  }
  for (std::thread& t : threads) t.join();
  if (!first_status.ok()) return first_status;
  result.seconds = static_cast<double>(MonoNs() - start) / 1e9;
  result.profiles = options_.profiles;
  return result;
}

absl::StatusOr<RedisIngestResult> RedisDriver::Ingest(const Window& window) {
  absl::Mutex mu;
  absl::Status first_status;
  RedisIngestResult result;
  std::atomic<uint64_t> window_updates{0};
  window_latency_.Reset();
  const int connections = std::max(1, options_.connections);

  const auto run = [&](int thread) -> absl::Status {
    absl::StatusOr<std::unique_ptr<resp::Connection>> c =
        resp::Connection::Connect(options_.address, kConnectTimeout);
    if (!c.ok()) return c.status();
    resp::Connection& conn = **c;
    // Keys: the workload's distribution, from a generator of this connection's own.
    Rng rng(options_.seed * 7919 + static_cast<uint64_t>(thread));
    const ZipfSampler zipf(options_.profiles, 0.99);
    size_t body = static_cast<size_t>(thread) * (pool_.size() / static_cast<size_t>(connections));
    Pipeline pipeline(conn, static_cast<size_t>(std::max(1, options_.in_flight)),
                      [&](const Pipeline::Unit& unit) {
                        const int64_t now = MonoNs();
                        const auto latency = static_cast<uint64_t>(now - unit.sent_ns);
                        if (window.Contains(unit.sent_ns)) window_latency_.Record(latency);
                        interval_latency_.Record(latency);
                        acked_.fetch_add(unit.items, std::memory_order_relaxed);
                        if (window.Contains(now)) {
                          window_updates.fetch_add(unit.items, std::memory_order_relaxed);
                        }
                      });
    std::string out, key_bulk, events_bulk, key;
    while (MonoNs() < window.end_ns) {
      out.clear();
      size_t replies = 0;
      for (uint32_t i = 0; i < options_.batch; ++i) {
        const uint64_t n =
            options_.skew == KeySkew::kZipf ? zipf.Sample(rng) - 1 : rng.Below(options_.profiles);
        key.clear();
        Workload::AppendKey(n, &key);
        key_bulk.clear();
        resp::AppendBulk(key, &key_bulk);
        events_bulk.clear();
        resp::AppendBulk(absl::StrCat(key, AsAbsl(kEventsSuffix)), &events_bulk);
        const UpdateTemplate& t = pool_[body];
        if (++body == pool_.size()) body = 0;
        if (!t.attribute_head.empty()) {
          absl::StrAppend(&out, t.attribute_head, key_bulk, t.attribute_tail);
          ++replies;
        }
        absl::StrAppend(&out, "*3\r\n$5\r\nLPUSH\r\n", events_bulk, t.event_bulk);
        absl::StrAppend(&out, "*4\r\n$5\r\nLTRIM\r\n", events_bulk, "$1\r\n0\r\n");
        resp::AppendBulk(kHistoryCap, &out);
        replies += 2;
      }
      const int64_t sent = MonoNs();
      sent_.fetch_add(options_.batch, std::memory_order_relaxed);
      if (absl::Status s = pipeline.Send(out, {sent, replies, options_.batch}); !s.ok()) return s;
    }
    if (absl::Status s = pipeline.Flush(); !s.ok()) return s;
    absl::MutexLock lock(&mu);
    result.errors += pipeline.errors();
    if (result.first_error.empty()) result.first_error = pipeline.first_error();
    return absl::OkStatus();
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < connections; ++t) {
    threads.emplace_back([&, t] {
      absl::Status s = run(t);
      absl::MutexLock lock(&mu);
      if (first_status.ok()) first_status = std::move(s);
    });
  }
  for (std::thread& t : threads) t.join();
  if (!first_status.ok()) return first_status;
  result.seconds = window.seconds();
  result.updates = window_updates.load();
  result.updates_per_s =
      result.seconds > 0 ? static_cast<double>(result.updates) / result.seconds : 0;
  return result;
}

}  // namespace segd::load
