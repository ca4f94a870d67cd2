// BuildCommit and VersionLine: the commit comes from the header commit.cmake writes at each build.
#include "cache-server/build_info.h"

#include "cache-server/build_commit.h"  // generated in the build tree: #define CORRAL_COMMIT
#include "cache-server/resp_util.h"     // kCorralVersion

namespace corral::server {

std::string_view BuildCommit() { return CORRAL_COMMIT; }

std::string VersionLine(std::string_view program) {
  std::string line(program);
  line.append(" ").append(kCorralVersion).append(" (commit ").append(BuildCommit()).append(")");
  return line;
}

}  // namespace corral::server
