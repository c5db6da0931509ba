#include "client/segctl/progress.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/segctl/output.h"

namespace segd::segctl {
namespace {

constexpr absl::Duration kRedrawEvery = absl::Milliseconds(200);

std::string FormatEta(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  return absl::StrFormat("%d:%02d", s / 60, s % 60);
}

}  // namespace

Progress::Progress(bool enabled, std::string verb, std::string unit)
    : enabled_(enabled), verb_(std::move(verb)), unit_(std::move(unit)), start_(absl::Now()) {}

Progress::~Progress() { Clear(); }

void Progress::Update(uint64_t done, double fraction) {
  if (!enabled_) return;
  const absl::Time now = absl::Now();
  if (now - last_draw_ < kRedrawEvery) return;
  last_draw_ = now;
  Draw(done, fraction);
}

void Progress::Draw(uint64_t done, double fraction) {
  if (fraction < 0 && total_ > 0)
    fraction = static_cast<double>(done) / static_cast<double>(total_);
  if (fraction > 1) fraction = 1;
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start_);
  std::string line = absl::StrCat(verb_, " ", FormatCount(done));
  if (total_ > 0) absl::StrAppend(&line, " of ", FormatCount(total_));
  absl::StrAppend(&line, " ", unit_);
  if (fraction >= 0)
    absl::StrAppend(&line, absl::StrFormat(" (%d%%)", static_cast<int>(fraction * 100)));
  if (elapsed > 0.5) {
    absl::StrAppend(&line, "  ", FormatCount(static_cast<uint64_t>(done / elapsed)), "/s");
    if (fraction > 0.001 && fraction < 1) {
      absl::StrAppend(&line, "  ETA ", FormatEta(elapsed * (1 - fraction) / fraction));
    }
  }
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::Clear() {
  if (!drawn_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
  last_draw_ = absl::InfinitePast();
}

}  // namespace segd::segctl
