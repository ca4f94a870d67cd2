// Tells tests whether this binary was built with a sanitizer (CMake's CORRAL_SANITIZE or
// CORRAL_FUZZ defines CORRAL_SANITIZER). Sanitizers replace the allocator and add shadow memory,
// quarantine and redzones, so a test that counts allocations or bounds RSS would measure them.
#pragma once

namespace corral::sanitizer {

#ifdef CORRAL_SANITIZER
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// Why allocation and RSS figures are not checked in a sanitizer build.
inline constexpr const char* kSanitizerSkipReason =
    "built with a sanitizer: it replaces the allocator and adds shadow memory, quarantine and "
    "redzones, so allocation counts and RSS measure the sanitizer, not corral";

}  // namespace corral::sanitizer

// Skips the current test in a sanitizer build, saying why.
#define CORRAL_SKIP_IF_SANITIZED()                               \
  do {                                                           \
    if (::corral::sanitizer::kSanitized) {                       \
      GTEST_SKIP() << ::corral::sanitizer::kSanitizerSkipReason; \
    }                                                            \
  } while (false)
