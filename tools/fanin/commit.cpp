// The commit the CLI reports (Note in commit.cmake): the only file that
// recompiles when the commit changes.
#include "cli.h"
#include "fanin_commit.h"

namespace fanin::cli {

const char* build_commit() noexcept { return FANIN_CLI_COMMIT; }

}  // namespace fanin::cli
