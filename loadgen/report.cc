#include "loadgen/report.h"

#include <cassert>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/text.h"

namespace segd::load {

const std::vector<Report::Field>& Report::Schema() {
  static const std::vector<Field>* const schema = new std::vector<Field>{
      // preload
      {"profiles", "preload", "profiles replayed", ""},
      {"replay_profiles_per_s", "preload", "replay", "profiles/s"},
      {"replay_events_per_s", "preload", "replay, events", "events/s"},
      {"replay_s", "preload", "replay time", "s"},
      {"replay_errors", "preload", "profiles rejected", ""},
      {"replay_segd_cpu_us_per_profile", "preload", "segd CPU per profile", "µs"},
      {"replay_segload_cpu_us_per_profile", "preload", "segload CPU per profile sent", "µs"},
      {"preload_built_ahead", "preload", "share built before the clock", ""},
      {"preload_build_cpu_s", "preload", "segload CPU building profiles", "s"},
      {"rss_before_preload_bytes", "preload", "RSS before preload", "B"},
      {"rss_bytes", "preload", "RSS after preload", "B"},
      {"bytes_per_profile", "preload", "memory per profile (RSS)", "B"},
      {"segments_put_s", "preload", "20 standard segments put", "s"},
      {"rss_with_segments_bytes", "preload", "RSS with the segments", "B"},
      {"bytes_per_profile_with_segments", "preload", "memory per profile, segments in", "B"},
      // ingest
      {"ingest_rate_target", "ingest", "target rate", "updates/s"},
      {"ingest_updates_per_s", "ingest", "ingest (acked)", "updates/s"},
      {"ingest_sent_updates_per_s", "ingest", "sent", "updates/s"},
      {"ingest_changes_per_s", "ingest", "changes emitted", "changes/s"},
      {"ingest_rejected", "ingest", "updates rejected", ""},
      {"ingest_ack_p50_ms", "ingest", "ack latency p50", "ms"},
      {"ingest_ack_p90_ms", "ingest", "ack latency p90", "ms"},
      {"ingest_ack_p99_ms", "ingest", "ack latency p99", "ms"},
      {"ingest_ack_p999_ms", "ingest", "ack latency p99.9", "ms"},
      {"ingest_ack_max_ms", "ingest", "ack latency max", "ms"},
      {"ingest_segd_cpu_us_per_update", "ingest", "segd CPU per update", "µs"},
      {"ingest_segload_cpu_us_per_update", "ingest", "segload CPU per update", "µs"},
      // latency
      {"latency_rate_target", "latency", "target rate", "updates/s"},
      {"latency_ingest_updates_per_s", "latency", "ingest (acked)", "updates/s"},
      {"latency_changes_per_s", "latency", "changes received", "changes/s"},
      {"latency_samples", "latency", "changes timed", ""},
      {"latency_p50_ms", "latency", "update-to-change p50", "ms"},
      {"latency_p90_ms", "latency", "update-to-change p90", "ms"},
      {"latency_p99_ms", "latency", "update-to-change p99", "ms"},
      {"latency_p999_ms", "latency", "update-to-change p99.9", "ms"},
      {"latency_max_ms", "latency", "update-to-change max", "ms"},
      {"latency_ack_p50_ms", "latency", "ack latency p50", "ms"},
      {"latency_ack_p99_ms", "latency", "ack latency p99", "ms"},
      {"latency_ack_p999_ms", "latency", "ack latency p99.9", "ms"},
      {"latency_segd_cpu_us_per_update", "latency", "segd CPU per update", "µs"},
      {"latency_segload_cpu_us_per_update", "latency", "segload CPU per update", "µs"},
      // fanout
      {"fanout_subscribers", "fanout", "subscribers", ""},
      {"fanout_changes_per_s", "fanout", "changes delivered, all subscribers", "changes/s"},
      {"fanout_changes_per_subscriber_per_s", "fanout", "changes delivered per subscriber",
       "changes/s"},
      {"fanout_changes_per_batch", "fanout", "changes per batch received", ""},
      {"fanout_ingest_updates_per_s", "fanout", "ingest with the subscribers", "updates/s"},
      {"fanout_baseline_before_updates_per_s", "fanout", "ingest without, before", "updates/s"},
      {"fanout_baseline_after_updates_per_s", "fanout", "ingest without, after", "updates/s"},
      {"fanout_baseline_ingest_updates_per_s", "fanout", "ingest without (mean)", "updates/s"},
      {"fanout_ingest_ratio", "fanout", "ingest ratio, with / without", ""},
      {"fanout_subscribers_dropped", "fanout", "subscribers dropped (fell behind)", ""},
      {"fanout_segd_cpu_us_per_update", "fanout", "segd CPU per update, with", "µs"},
      {"fanout_baseline_segd_cpu_us_per_update", "fanout", "segd CPU per update, without", "µs"},
      {"fanout_segload_cpu_us_per_update", "fanout", "segload CPU per update, with", "µs"},
      {"fanout_baseline_segload_cpu_us_per_update", "fanout", "segload CPU per update, without",
       "µs"},
      // backfill
      {"backfill_s", "backfill", "PutSegment of a new segment", "s"},
      {"backfill_members", "backfill", "its members", ""},
      // funnel
      {"funnel_s", "funnel", "3-step funnel", "s"},
      {"funnel_events_per_s", "funnel", "events scanned", "events/s"},
      {"funnel_events", "funnel", "events held", ""},
      {"funnel_viewed", "funnel", "profiles: page_view", ""},
      {"funnel_added", "funnel", "profiles: … add_to_cart", ""},
      {"funnel_purchased", "funnel", "profiles: … purchase", ""},
      // redis
      {"redis_preload_profiles_per_s", "redis", "preload (HSET + RPUSH)", "profiles/s"},
      {"redis_bytes_per_profile", "redis", "memory per profile (used_memory)", "B"},
      {"redis_rss_bytes", "redis", "RSS", "B"},
      {"redis_ingest_updates_per_s", "redis", "ingest (HSET + LPUSH + LTRIM)", "updates/s"},
      {"redis_batch_p50_ms", "redis", "batch round trip p50", "ms"},
      {"redis_batch_p99_ms", "redis", "batch round trip p99", "ms"},
      {"redis_errors", "redis", "error replies", ""},
      {"ingest_ratio_to_redis", "redis", "segd ingest / Redis ingest", ""},
  };
  return *schema;
}

void Report::Set(std::string_view key, double value) {
#ifndef NDEBUG
  bool known = false;
  for (const Field& f : Schema()) known = known || f.key == key;
  assert(known);
#endif
  values_[std::string(key)] = value;
}

std::optional<double> Report::Get(std::string_view key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

void Report::SetConfig(std::string key, std::string json_value) {
  for (auto& [k, v] : config_) {
    if (k == key) {
      v = std::move(json_value);
      return;
    }
  }
  config_.emplace_back(std::move(key), std::move(json_value));
}

void Report::AddServer(std::string json_object) { servers_.push_back(std::move(json_object)); }

void Report::AddError(std::string message) { errors_.push_back(std::move(message)); }

void Report::AddWarning(std::string message) { warnings_.push_back(std::move(message)); }

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  if (v == std::trunc(v) && std::abs(v) < 9.007199254740992e15) {
    return absl::StrFormat("%.0f", v);
  }
  return absl::StrFormat("%.10g", v);
}

std::string HumanNumber(double v) {
  if (std::abs(v) >= 1000) {
    const std::string digits = absl::StrFormat("%.0f", std::abs(v));
    std::string out = v < 0 ? "-" : "";
    for (size_t i = 0; i < digits.size(); ++i) {
      if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
      out.push_back(digits[i]);
    }
    return out;
  }
  if (v == std::trunc(v)) return absl::StrFormat("%.0f", v);
  return absl::StrFormat("%.4g", v);
}

std::string Report::ToJson() const {
  std::string out = "{\n  \"benchmark\": \"segload\",\n  \"config\": {";
  for (size_t i = 0; i < config_.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "\n" : ",\n", "    ", JsonString(config_[i].first), ": ",
                    config_[i].second);
  }
  out += "\n  },\n";
  for (const Field& f : Schema()) {
    const std::optional<double> v = Get(f.key);
    absl::StrAppend(&out, "  ", JsonString(f.key), ": ", v ? JsonNumber(*v) : "null", ",\n");
  }
  out += "  \"servers\": [";
  for (size_t i = 0; i < servers_.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "\n    " : ",\n    ", servers_[i]);
  }
  out += servers_.empty() ? "],\n" : "\n  ],\n";
  const auto list = [&](std::string_view name, const std::vector<std::string>& items,
                        std::string_view end) {
    absl::StrAppend(&out, "  \"", AsAbsl(name), "\": [");
    for (size_t i = 0; i < items.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? "\n    " : ",\n    ", JsonString(items[i]));
    }
    absl::StrAppend(&out, items.empty() ? "]" : "\n  ]", AsAbsl(end));
  };
  list("errors", errors_, ",\n");
  list("warnings", warnings_, "\n}\n");
  return out;
}

void Report::PrintTable(std::FILE* out) const {
  // Labels may hold multi-byte characters: pad by code points, not bytes.
  const auto width = [](std::string_view s) {
    size_t n = 0;
    for (const char c : s) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
    return n;
  };
  size_t label_w = 6, value_w = 5;
  for (const Field& f : Schema()) {
    if (const auto v = Get(f.key)) {
      label_w = std::max(label_w, width(f.label));
      value_w = std::max(value_w, HumanNumber(*v).size());
    }
  }
  const auto pad = [&](std::string_view s, size_t w) {
    return std::string(s) + std::string(w > width(s) ? w - width(s) : 0, ' ');
  };
  std::fprintf(out, "%s  %s  %s  %s\n", pad("phase", 8).c_str(), pad("figure", label_w).c_str(),
               absl::StrFormat("%*s", static_cast<int>(value_w), "value").c_str(), "unit");
  std::string_view last_phase;
  for (const Field& f : Schema()) {
    const auto v = Get(f.key);
    if (!v) continue;
    const std::string_view phase = f.phase == last_phase ? "" : f.phase;
    last_phase = f.phase;
    std::fprintf(out, "%s  %s  %s  %s\n", pad(phase, 8).c_str(), pad(f.label, label_w).c_str(),
                 absl::StrFormat("%*s", static_cast<int>(value_w), HumanNumber(*v)).c_str(),
                 std::string(f.unit).c_str());
  }
  for (const std::string& w : warnings_) std::fprintf(out, "warning: %s\n", w.c_str());
  for (const std::string& e : errors_) std::fprintf(out, "error: %s\n", e.c_str());
}

}  // namespace segd::load
