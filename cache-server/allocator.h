// The memory allocator corral-server runs on: jemalloc when the executable links it (as
// cache-server/CMakeLists.txt does outside sanitizer and fuzz builds), else glibc's. Found at run
// time through weak symbols, so nothing that links these libraries depends on jemalloc.
#pragma once

#include <string>

namespace corral::server {

// INFO's mem_allocator, as Redis names it: "jemalloc-5.3.0", or "libc".
std::string AllocatorName();
// MEMORY MALLOC-STATS: jemalloc's report; glibc has none (Redis's text for that case).
std::string MallocStats();
// MEMORY PURGE: gives free pages back to the system (jemalloc: the thread's cache, then every
// arena's dirty pages, as Redis does; glibc: malloc_trim).
void PurgeMalloc();

}  // namespace corral::server
