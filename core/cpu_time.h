#pragma once

#include <sys/resource.h>

namespace segd {

// The CPU time (user + system) the calling process has used so far, every thread's, in
// seconds; 0 if the kernel will not say.
inline double ProcessCpuSeconds() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace segd
