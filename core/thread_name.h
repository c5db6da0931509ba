#pragma once

#include <pthread.h>

#include <string>
#include <string_view>

namespace segd {

// Names the calling thread, as `top -H`, `perf` and debuggers show it. Linux keeps 15
// bytes of a name; the rest is cut.
inline void NameThisThread(std::string_view name) {
  constexpr size_t kMaxName = 15;
  const std::string kept(name.substr(0, kMaxName));
  pthread_setname_np(pthread_self(), kept.c_str());
}

// The calling thread's name.
inline std::string ThisThreadName() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof name);
  return name;
}

}  // namespace segd
