#pragma once

namespace segd {

// Starts loading the cache line of `p` (__builtin_prefetch), in a form the optimizer
// keeps. GCC deletes a loop whose body only prefetches, as it deletes any loop without
// side effects, and a prefetch is none to it: the loop over a replayed profile's string
// values went, without a word, in a build where their hashes came precomputed (no call
// left in it), and the value dictionary's lookups then waited on memory for a fifth of
// the shards' time. The empty volatile asm that takes `p` is the side effect that keeps
// it, at no cost.
inline void PrefetchLine(const void* p) {
  __builtin_prefetch(p);
  asm volatile("" : : "r"(p));
}

}  // namespace segd
