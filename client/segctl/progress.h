#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace segd::segctl {

// A progress line on stderr for a long operation, redrawn in place at most 5 times a
// second: "exported 120,000 of 500,000 profiles (24%)  61,000/s  ETA 0:06". The
// percentage and ETA come from the total when one is known, else from the fraction of
// the work done that the caller reports (e.g. bytes read of a file). A disabled Progress
// (stderr not a terminal, --progress=off) prints nothing.
//
// Thread safety: not thread-safe.
class Progress {
 public:
  // `verb`: what is being done, past tense ("exported"); `unit`: what is counted
  // ("profiles").
  Progress(bool enabled, std::string verb, std::string unit);
  // Erases the line.
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void SetTotal(uint64_t total) { total_ = total; }
  // `done` units so far; `fraction`: the share of the whole work done, in [0, 1], when
  // the caller knows it better than done / total (negative: unknown).
  void Update(uint64_t done, double fraction = -1);
  // Erases the line; Update draws it again.
  void Clear();

 private:
  void Draw(uint64_t done, double fraction);

  const bool enabled_;
  const std::string verb_;
  const std::string unit_;
  const absl::Time start_;
  uint64_t total_ = 0;
  absl::Time last_draw_ = absl::InfinitePast();
  bool drawn_ = false;
};

}  // namespace segd::segctl
