// See allocator.h.
#include "cache-server/allocator.h"

#include <malloc.h>

#include <cstddef>

// jemalloc's, when the executable is linked with it; null otherwise.
extern "C" {
[[gnu::weak]] int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen);
[[gnu::weak]] void malloc_stats_print(void (*write)(void*, const char*), void* opaque,
                                      const char* opts);
}

namespace corral::server {

std::string AllocatorName() {
  if (mallctl == nullptr) return "libc";
  const char* version = nullptr;
  size_t size = sizeof version;
  if (mallctl("version", &version, &size, nullptr, 0) != 0 || version == nullptr) {
    return "jemalloc";
  }
  // "5.3.0-0-g54eaed1d...": the release, as Redis reports it.
  std::string release(version);
  return "jemalloc-" + release.substr(0, release.find('-'));
}

std::string MallocStats() {
  if (malloc_stats_print == nullptr) return "Stats not supported for the current allocator";
  std::string stats;
  malloc_stats_print(
      [](void* opaque, const char* text) { static_cast<std::string*>(opaque)->append(text); },
      &stats, nullptr);
  return stats;
}

void PurgeMalloc() {
  if (mallctl == nullptr) {
    malloc_trim(0);
    return;
  }
  constexpr const char* kAllArenas = "arena.4096.purge";  // MALLCTL_ARENAS_ALL is 4096
  mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
  mallctl(kAllArenas, nullptr, nullptr, nullptr, 0);
}

}  // namespace corral::server
