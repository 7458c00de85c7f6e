// Why: every tensor is a fresh ArrayBuffer, and glibc gives each buffer above its mmap threshold
// (at most 32 MiB, adjusted dynamically) its own mapping, unmapped again when the buffer is
// collected; the heap top is trimmed back to the kernel too. Each later buffer then touches fresh
// pages, which the kernel must fault in and clear one by one (on a VM whose host reclaims freed
// guest pages, tens of µs per page). A training step allocates gigabytes of short-lived buffers, so
// this dominated steps on such hosts (a 131 MB buffer: ~1.5 s fresh vs ~40 ms reused). Served from
// a heap that keeps its pages, a new buffer reuses resident memory (calloc clears it with memset).
// Peak RSS is unchanged in kind: memory is reused, not added; the process simply does not give it
// back between steps.
#include "memory.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace flamingo {

std::string keep_freed_memory() {
#if defined(__GLIBC__)
  // Allocations below 256 MiB come from the heap; buffers above it are rare (a model's largest
  // weights) and long-lived. The heap top is never trimmed.
  constexpr int kMmapThreshold = 256 << 20;
  constexpr int kTrimThreshold = -1;  // never (mallopt(3): -1 disables trimming)
  const bool ok = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
  return ok ? "freed memory kept (glibc mmap threshold 256 MiB, no trimming)"
            : "glibc default (mallopt refused the thresholds)";
#else
  return "system allocator default (not glibc)";
#endif
}

}  // namespace flamingo
