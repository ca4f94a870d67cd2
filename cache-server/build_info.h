// What this corral binary is: its version and the source commit it was built from (for
// corral-server --version and INFO's corral_commit). The commit is written at build time by
// cache-server/commit.cmake.
#pragma once

#include <string>
#include <string_view>

namespace corral::server {

// The commit, e.g. "0123456789ab" (12 hex digits of `git rev-parse`), with "-dirty" when the
// tree had uncommitted changes; the CORRAL_COMMIT build setting when built without .git (a
// container build); "unknown" when neither was there.
std::string_view BuildCommit();

// The --version line, without a newline: "corral-server 0.1.0 (commit 0123456789ab)".
std::string VersionLine(std::string_view program);

}  // namespace corral::server
