// The `fanin` command: subcommands bench, race, embed and serve (bench.h,
// race.h, embed.h, serve.h).
//
// Exit codes are those of cli.h: 0 success, 1 a failed run (a fanin::Error is
// printed as "fanin: <what()>"), 2 a bad command line.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <iostream>

#include "bench.h"
#include "cli.h"
#include "embed.h"
#include "fanin/error.h"
#include "race.h"
#include "serve.h"

namespace fanin::cli {

std::string utc_now_iso8601() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

void check_backend_name(const std::string& backend) {
  if (backend == "cpu" || backend == "cuda") return;
  if (backend.rfind("cuda:", 0) == 0 && backend.size() > 5 &&
      backend.find_first_not_of("0123456789", 5) == std::string::npos)
    return;
  throw UsageError("--backend: unknown backend '" + backend + "'; expected cpu, cuda or cuda:N");
}

std::string join(const std::vector<int>& values, const char* sep) {
  std::string s;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) s += sep;
    s += std::to_string(values[i]);
  }
  return s;
}

}  // namespace fanin::cli

namespace {

const char* kFooter =
    "Exit codes: 0 success; 1 the run failed (a fanin error, e.g. 'Unavailable' when the\n"
    "backend's device is not present, or a race test that did not behave); 2 bad command line.";

}  // namespace

int main(int argc, char** argv) {
  using namespace fanin::cli;
  CLI::App app{"fanin: many threads, one device, safe and fast neural-network inference", "fanin"};
  app.set_version_flag("--version", std::string("fanin ") + FANIN_VERSION +
                                        " (commit " + build_commit() + ")");
  app.require_subcommand(1);
  app.footer(kFooter);

  BenchOptions bench;
  CLI::App* bench_cmd = add_bench_command(app, bench);
  RaceOptions race;
  CLI::App* race_cmd = add_race_command(app, race);
  EmbedOptions embed;
  CLI::App* embed_cmd = add_embed_command(app, embed);
  ServeOptions serve;
  CLI::App* serve_cmd = add_serve_command(app, serve);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and --version exit 0; every real parse error is a usage error.
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  const char* sub = bench_cmd->parsed()   ? "bench"
                    : race_cmd->parsed()  ? "race"
                    : serve_cmd->parsed() ? "serve"
                                          : "embed";
  try {
    if (bench_cmd->parsed()) return run_bench(bench);
    if (race_cmd->parsed()) return run_race(race);
    if (embed_cmd->parsed()) return run_embed(embed);
    if (serve_cmd->parsed()) return run_serve(serve);
    return kExitUsage;  // unreachable: require_subcommand(1)
  } catch (const UsageError& e) {
    std::cerr << "fanin " << sub << ": " << e.what() << "\n"
              << "Run 'fanin " << sub << " --help' for the options.\n";
    return kExitUsage;
  } catch (const fanin::Error& e) {
    std::cerr << "fanin: " << e.what() << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "fanin: unexpected error: " << e.what() << "\n";
    return kExitFailure;
  }
}
