// tools/fanin/race.h: `fanin race`, the seed report's three command-buffer
// experiments (/work/shared/seed/000_*.txt) run on fanin's API.
//
//   Test 1 separate command buffers: each thread encodes on its own leased
//          stream, concurrently -> every encoder succeeds.
//   Test 2 shared command buffer: threads released together begin encoding
//          on one stream -> one winner, every other thread gets
//          Error{ConcurrentEncoding}, the process lives, and the buffer is
//          still usable afterwards (Metal asserts and aborts here).
//   Test 3 sequential: encoders begin/end on one stream from many threads,
//          one after another -> every encoder succeeds.
// Prints one line per test; exit code 0 only if all three behave so.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace fanin::cli {

// The command line of `fanin race`.
struct RaceOptions {
  std::string backend = "cpu";
  int threads = 8;
};

// Registers the `race` subcommand on `app`, parsing into `options`.
CLI::App* add_race_command(CLI::App& app, RaceOptions& options);

// Runs the three tests; returns the exit code (0: all PASS, 1: a FAIL).
// Throws UsageError for bad values and fanin::Error when the device is
// unavailable.
int run_race(const RaceOptions& options);

}  // namespace fanin::cli
