// Process heap policy for the engine's buffers.
#pragma once
#include <string>

namespace flamingo {

// Keeps freed buffers inside the process (glibc: large allocations from the heap instead of their
// own mmap, and no trimming of the heap top). Called once when the addon loads. Returns a
// description for info() ("kept (...)" or why not).
std::string keep_freed_memory();

}  // namespace flamingo
