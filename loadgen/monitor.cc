#include "loadgen/monitor.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "loadgen/report.h"
#include "loadgen/window.h"

namespace segd::load {

absl::StatusOr<std::unique_ptr<SeriesWriter>> SeriesWriter::Open(const std::string& path,
                                                                 int64_t start_ns) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--csv ", path, ": ", std::strerror(errno)));
  }
  std::fprintf(file, "%s\n", kHeader);
  std::fflush(file);
  return std::unique_ptr<SeriesWriter>(new SeriesWriter(file, start_ns));
}

SeriesWriter::~SeriesWriter() { std::fclose(file_); }

void SeriesWriter::Write(const SeriesRow& r) {
  // One fprintf per row: stdio locks the stream, so rows never interleave.
  std::fprintf(file_, "%s,%.3f,%.1f,%.1f,%.1f,%.3f,%.3f,%.3f,%.3f,%llu,%llu\n", r.phase.c_str(),
               r.t_s, r.sent_per_s, r.acked_per_s, r.changes_per_s, r.ack_p50_ms, r.ack_p99_ms,
               r.latency_p50_ms, r.latency_p99_ms, static_cast<unsigned long long>(r.in_flight),
               static_cast<unsigned long long>(r.rejected));
  std::fflush(file_);
}

Monitor::Monitor(std::string phase, Probe probe, bool progress, SeriesWriter* series)
    : phase_(std::move(phase)), probe_(std::move(probe)), progress_(progress), series_(series) {
  thread_ = std::thread([this] { Loop(); });
}

Monitor::~Monitor() {
  stop_.Notify();
  thread_.join();
  if (progress_) std::fprintf(stderr, "\r\033[K");
}

void Monitor::Loop() {
  const auto read = [](const std::function<uint64_t()>& f) -> uint64_t { return f ? f() : 0; };
  uint64_t sent = read(probe_.sent), acked = read(probe_.acked), changes = read(probe_.changes),
           rejected = read(probe_.rejected);
  const int64_t start = MonoNs();
  int64_t last = start;
  Histogram ack, latency;
  for (int second = 1;; ++second) {
    const int64_t due = start + int64_t{second} * 1'000'000'000;
    if (stop_.WaitForNotificationWithTimeout(absl::Nanoseconds(due - MonoNs()))) return;
    const int64_t now = MonoNs();
    const double dt = static_cast<double>(now - last) / 1e9;
    last = now;
    const uint64_t sent_now = read(probe_.sent), acked_now = read(probe_.acked),
                   changes_now = read(probe_.changes), rejected_now = read(probe_.rejected);
    ack.Reset();
    latency.Reset();
    for (Histogram* h : probe_.ack) ack.TakeFrom(*h);
    for (Histogram* h : probe_.latency) latency.TakeFrom(*h);

    SeriesRow row;
    row.phase = phase_;
    row.sent_per_s = static_cast<double>(sent_now - sent) / dt;
    row.acked_per_s = static_cast<double>(acked_now - acked) / dt;
    row.changes_per_s = static_cast<double>(changes_now - changes) / dt;
    row.ack_p50_ms = static_cast<double>(ack.Percentile(50)) / 1e6;
    row.ack_p99_ms = static_cast<double>(ack.Percentile(99)) / 1e6;
    row.latency_p50_ms = static_cast<double>(latency.Percentile(50)) / 1e6;
    row.latency_p99_ms = static_cast<double>(latency.Percentile(99)) / 1e6;
    row.in_flight = read(probe_.in_flight);
    row.rejected = rejected_now - rejected;
    sent = sent_now;
    acked = acked_now;
    changes = changes_now;
    rejected = rejected_now;
    if (series_ != nullptr) {
      row.t_s = static_cast<double>(now - series_->start_ns()) / 1e9;
      series_->Write(row);
    }
    if (!progress_) continue;
    std::string line = absl::StrFormat("%-8s %3ds", phase_, second);
    if (probe_.sent) {
      absl::StrAppend(&line, "  ", probe_.sent_label, " ", HumanNumber(row.sent_per_s), "/s");
    }
    absl::StrAppend(&line, "  ", probe_.acked_label, " ", HumanNumber(row.acked_per_s), " ",
                    probe_.unit, "/s");
    if (!probe_.ack.empty()) {
      absl::StrAppendFormat(&line, "  ack p50 %s p99 %s ms", HumanNumber(row.ack_p50_ms),
                            HumanNumber(row.ack_p99_ms));
    }
    if (probe_.changes) absl::StrAppend(&line, "  changes ", HumanNumber(row.changes_per_s), "/s");
    if (!probe_.latency.empty()) {
      absl::StrAppendFormat(&line, "  change p50 %s p99 %s ms", HumanNumber(row.latency_p50_ms),
                            HumanNumber(row.latency_p99_ms));
    }
    if (probe_.in_flight) absl::StrAppend(&line, "  in flight ", row.in_flight);
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
  }
}

}  // namespace segd::load
